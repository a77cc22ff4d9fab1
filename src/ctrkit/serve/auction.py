"""Generalised second-price (GSP) position auction, the pure logic (no model, no HTTP).

Model (Edelman, Ostrovsky & Schwarz 2007; Varian 2007, "Position auctions"): the click
probability of ad ``i`` in slot ``j`` is separable, ``pCTR_i * position_ctr[j]``, with
``position_ctr`` non-increasing. Ads are ranked by expected value per impression ``bid_i * pCTR_i``
(descending) and slot ``j`` goes to the ``j``-th ranked ad, which maximises the total expected
value for any non-increasing position factors. The ad in slot ``j`` pays, per click, the least
bid that would keep its rank::

    price_j = bid_{j+1} * pCTR_{j+1} / pCTR_j        (ranked ads; ``j+1`` the next one)

and never less than the reserve price (per click); an ad with no next competitor pays the reserve
(0 without one). Ads bidding below the reserve take no slot. Because the ranking is by
``bid * pCTR``, ``price_j <= bid_j`` always holds. Ties in ``bid * pCTR`` keep the input order
(stable sort), so results are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Hashable, Sequence


@dataclass(frozen=True)
class Candidate:
    """One ad in the auction: an id, its bid per click and its predicted CTR."""

    ad_id: Hashable
    bid: float
    pctr: float


@dataclass(frozen=True)
class SlotResult:
    """The outcome of one slot.

    ``score`` is ``bid * pctr`` (the ranking key); ``expected_ctr`` is ``pctr * position_factor``;
    ``expected_revenue`` is ``price_per_click * expected_ctr`` per impression.
    """

    slot: int
    ad_id: Any
    bid: float
    pctr: float
    score: float
    price_per_click: float
    position_factor: float
    expected_ctr: float
    expected_revenue: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_number(name: str, v: float, *, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if v < low or (high is not None and v > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {rng}, got {v!r}")
    return float(v)


def gsp_auction(
    candidates: Sequence[Candidate],
    slots: int,
    *,
    position_ctr: Sequence[float] | None = None,
    reserve: float | None = None,
) -> list[SlotResult]:
    """Allocate up to ``slots`` slots among ``candidates`` and price them by GSP.

    ``position_ctr`` (optional) gives one factor per slot (at least ``slots`` values); it scales
    the expected CTR reported per slot but, being the same for every ad, does not change the
    allocation. ``reserve`` is a minimum price per click. Returns one :class:`SlotResult` per
    filled slot, best slot first (fewer than ``slots`` when there are not enough eligible ads).
    """
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
        raise ValueError(f"slots must be a non-negative integer, got {slots!r}")
    if position_ctr is not None:
        if len(position_ctr) < slots:
            raise ValueError(f"position_ctr has {len(position_ctr)} factors for {slots} slots")
        factors = [_check_number(f"position_ctr[{j}]", f) for j, f in enumerate(position_ctr)]
    else:
        factors = [1.0] * slots
    r = 0.0 if reserve is None else _check_number("reserve", reserve)
    for i, c in enumerate(candidates):
        _check_number(f"candidates[{i}].bid", c.bid)
        _check_number(f"candidates[{i}].pctr", c.pctr, high=1.0)
    eligible = [c for c in candidates if c.bid >= r]
    ranked = sorted(eligible, key=lambda c: -(c.bid * c.pctr))  # stable: ties keep input order
    out: list[SlotResult] = []
    for j in range(min(slots, len(ranked))):
        c = ranked[j]
        if j + 1 < len(ranked):
            nxt = ranked[j + 1]
            price = nxt.bid * nxt.pctr / c.pctr if c.pctr > 0 else 0.0
        else:
            price = 0.0
        price = min(max(price, r), c.bid)  # the min only guards float rounding (price <= bid)
        exp_ctr = c.pctr * factors[j]
        out.append(
            SlotResult(
                slot=j + 1,
                ad_id=c.ad_id,
                bid=c.bid,
                pctr=c.pctr,
                score=c.bid * c.pctr,
                price_per_click=price,
                position_factor=factors[j],
                expected_ctr=exp_ctr,
                expected_revenue=price * exp_ctr,
            )
        )
    return out


__all__ = ["Candidate", "SlotResult", "gsp_auction"]

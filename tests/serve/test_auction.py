"""GSP position auction on hand-computed cases."""

from __future__ import annotations

import pytest

from ctrkit.serve.auction import Candidate, gsp_auction


def test_three_ads_two_slots():
    # scores: A 2*0.10=0.20, B 1*0.30=0.30, C 3*0.05=0.15 -> order B, A, C
    c = [Candidate("A", 2.0, 0.10), Candidate("B", 1.0, 0.30), Candidate("C", 3.0, 0.05)]
    r = gsp_auction(c, 2)
    assert [s.ad_id for s in r] == ["B", "A"]
    # B pays A's score / B's pCTR = 0.20 / 0.30; A pays C's score / A's pCTR = 0.15 / 0.10
    assert r[0].price_per_click == pytest.approx(0.2 / 0.3)
    assert r[1].price_per_click == pytest.approx(1.5)
    assert all(s.price_per_click <= s.bid for s in r)
    assert [s.slot for s in r] == [1, 2]


def test_position_factors_scale_expected_ctr_not_allocation():
    c = [Candidate("A", 2.0, 0.10), Candidate("B", 1.0, 0.30), Candidate("C", 3.0, 0.05)]
    r = gsp_auction(c, 3, position_ctr=[1.0, 0.5, 0.25])
    assert [s.ad_id for s in r] == ["B", "A", "C"]
    assert r[1].expected_ctr == pytest.approx(0.05)
    assert r[1].expected_revenue == pytest.approx(1.5 * 0.05)
    # The last ad has no competitor below it: pays the reserve (none -> 0).
    assert r[2].price_per_click == 0.0
    assert r[2].expected_ctr == pytest.approx(0.0125)


def test_reserve_price():
    c = [Candidate("A", 2.0, 0.10), Candidate("B", 1.0, 0.30), Candidate("C", 0.4, 0.50)]
    # C bids under the reserve 0.5: excluded. B (0.30) > A (0.20).
    r = gsp_auction(c, 3, reserve=0.5)
    assert [s.ad_id for s in r] == ["B", "A"]
    assert r[0].price_per_click == pytest.approx(0.2 / 0.3)  # 0.667 > reserve
    assert r[1].price_per_click == pytest.approx(0.5)  # last: the reserve
    # A next-based price under the reserve is raised to the reserve.
    r = gsp_auction([Candidate("X", 1.0, 0.5), Candidate("Y", 0.6, 0.1)], 1, reserve=0.5)
    assert r[0].price_per_click == pytest.approx(0.5)  # 0.6*0.1/0.5 = 0.12 -> 0.5


def test_more_slots_than_ads_ties_and_zero_ctr():
    r = gsp_auction([Candidate(1, 1.0, 0.2), Candidate(2, 2.0, 0.1)], 5)
    # Equal scores keep the input order; the winner pays exactly its bid (score tie).
    assert [s.ad_id for s in r] == [1, 2]
    assert r[0].price_per_click == pytest.approx(1.0)
    assert gsp_auction([], 3) == []
    assert gsp_auction([Candidate("a", 1.0, 0.2)], 0) == []
    z = gsp_auction([Candidate("a", 1.0, 0.0), Candidate("b", 1.0, 0.0)], 1)
    assert z[0].price_per_click == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="position_ctr"):
        gsp_auction([Candidate("a", 1.0, 0.1)], 2, position_ctr=[1.0])
    with pytest.raises(ValueError, match="bid"):
        gsp_auction([Candidate("a", -1.0, 0.1)], 1)
    with pytest.raises(ValueError, match="pctr"):
        gsp_auction([Candidate("a", 1.0, 1.5)], 1)
    with pytest.raises(ValueError, match="slots"):
        gsp_auction([], -1)

"""AUC-against-cost scatter plots as self-contained SVG (no plotting library, no fonts, no scripts).

One plot per dataset and cost (training seconds, single-row inference latency, parameters): a
point per model at (cost, mean test AUC) with its 95% interval as a vertical bar, and the Pareto
front -- the models no other model beats on both cost and AUC -- drawn as a staircase and
highlighted. The SVG is valid both inline in HTML and as a standalone ``.svg`` file; every piece of
text in it is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colours with enough contrast on white and for the common colour-vision deficiencies
# (front blue against muted grey; no red/green pair carries meaning).
_FRONT = "#1f5fa8"
_OTHER = "#8a8a8a"
_GRID = "#e3e3e3"
_AXIS = "#333333"


@dataclass(frozen=True)
class PlotPoint:
    """A model in a plot: its name, cost (x), mean AUC (y) and optional interval of the AUC."""

    label: str
    x: float
    y: float
    y_low: float | None = None
    y_high: float | None = None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points on the Pareto front when lower ``x`` (cost) and higher ``y`` (AUC)
    are better: a point is on it unless another is at least as good on both and better on one.

    Quadratic, which is fine for a leaderboard (tens of models) and obviously correct.
    """
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(
            xj <= xi and yj >= yi and (xj < xi or yj > yi) for j, (xj, yj) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _nice_step(span: float, target: int) -> float:
    """A 1/2/5 x 10^k step giving about ``target`` intervals over ``span``."""
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _linear_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    step = _nice_step(hi - lo, target)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Decades in range; with fewer than three, also 2x and 5x (the axis would be bare)."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0**k for k in range(k0, k1 + 1) if lo <= 10.0**k <= hi]
    if len(decades) >= 3:
        return decades
    ticks = [m * 10.0**k for k in range(k0, k1 + 1) for m in (1, 2, 5)]
    return [t for t in ticks if lo <= t <= hi]


def _fmt_tick(v: float) -> str:
    """Short tick labels: 0.5, 20, 1.5k, 3M."""
    a = abs(v)
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if a >= div:
            s = f"{v / div:.3g}"
            return s + unit
    if a >= 1 or a == 0:
        return f"{v:.4g}"
    return f"{v:.3g}"


def _fmt_value(v: float) -> str:
    return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"


def _low_fence(values: list[float]) -> float | None:
    """``Q1 - 3 IQR`` of ``values`` when some value lies below it (with at least 5 values), else None."""
    if len(values) < 5:
        return None
    v = sorted(values)
    q1, q3 = _quantile(v, 0.25), _quantile(v, 0.75)
    fence = q1 - 3 * (q3 - q1)
    return fence if v[0] < fence and q3 > q1 else None


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values."""
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _place_label(
    x: float, y: float, text: str, placed: list[tuple[float, float, float, float]], area: tuple[float, float, float, float]
) -> tuple[float, float, float, float] | None:
    """A box ``(x0, y0, x1, y1)`` for a label next to the point at ``(x, y)`` that overlaps no
    label already placed and stays inside ``area``; ``None`` when every spot is taken (the point
    keeps its tooltip). Widths are estimated (about 6.2 px per character at 11 px sans-serif):
    no font metrics without a browser, and a rough box is enough to avoid overprinting."""
    w, h = 6.2 * len(text) + 2, 12.0
    candidates = [
        (x + 7, y - 5 - h), (x + 7, y + 5), (x - 7 - w, y - 5 - h), (x - 7 - w, y + 5),
        (x - w / 2, y - 8 - h), (x - w / 2, y + 8), (x + 7, y - h / 2), (x - 7 - w, y - h / 2),
    ]  # fmt: skip
    for x0, y0 in candidates:
        box = (x0, y0, x0 + w, y0 + h)
        if box[0] < area[0] or box[2] > area[2] or box[1] < area[1] or box[3] > area[3]:
            continue
        if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
            return box
    return None


def scatter_svg(
    points: Sequence[PlotPoint],
    *,
    title: str,
    x_label: str,
    y_label: str = "test AUC (mean over seeds, 95% interval)",
    log_x: bool | None = None,
    width: int = 640,
    height: int = 400,
) -> str:
    """An SVG scatter of ``points`` with the Pareto front (low x, high y) marked.

    ``log_x=None`` picks a log axis when every x is positive and they span at least a factor of
    10 (training times and parameter counts usually span orders of magnitude).
    """
    pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    ml, mr, mt, mb = 64, 24, 46, 52  # margins: room for tick labels and axis titles
    pw, ph = width - ml - mr, height - mt - mb
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{ml}" y="18" font-size="13" font-weight="bold" fill="{_AXIS}">{escape(title)}</text>',
    ]
    if not pts:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="{_AXIS}">no data</text></svg>')
        return "\n".join(out)

    xs = [p.x for p in pts]
    if log_x is None:
        log_x = min(xs) > 0 and max(xs) / min(xs) >= 10
    if log_x and min(xs) <= 0:
        log_x = False  # a zero cost cannot sit on a log axis
    ys = [v for p in pts for v in (p.y, p.y_low, p.y_high) if v is not None and math.isfinite(v)]

    if log_x:
        lx0, lx1 = math.log10(min(xs)), math.log10(max(xs))
        pad = max((lx1 - lx0) * 0.06, 0.15)
        lx0, lx1 = lx0 - pad, lx1 + pad
        x_lo, x_hi = 10**lx0, 10**lx1
        x_ticks = _log_ticks(x_lo, x_hi)

        def sx(v: float) -> float:
            return ml + (math.log10(v) - lx0) / (lx1 - lx0) * pw
    else:
        x_lo, x_hi = min(xs), max(xs)
        span = x_hi - x_lo or max(abs(x_hi), 1.0)
        x_lo, x_hi = x_lo - span * 0.06, x_hi + span * 0.06
        if min(xs) >= 0:
            x_lo = max(x_lo, 0.0)  # costs are not negative; do not draw a negative axis
        x_ticks = _linear_ticks(x_lo, x_hi)

        def sx(v: float) -> float:
            return ml + (v - x_lo) / (x_hi - x_lo) * pw

    # A weak baseline (LR far below the rest) would squeeze every other model into a thin band at
    # the top: points below a robust lower fence sit on the bottom edge as triangles instead.
    floor = _low_fence([p.y for p in pts])
    ys = [v for v in ys if floor is None or v >= floor]
    y_lo, y_hi = min(ys), max(ys)
    yspan = y_hi - y_lo or max(abs(y_hi) * 1e-3, 1e-4)
    y_lo, y_hi = y_lo - yspan * 0.08, y_hi + yspan * 0.08
    y_ticks = _linear_ticks(y_lo, y_hi)

    def sy(v: float) -> float:
        return mt + (1 - (max(v, y_lo) - y_lo) / (y_hi - y_lo)) * ph

    # grid and ticks
    for t in x_ticks:
        X = sx(t)
        out.append(f'<line x1="{X:.1f}" y1="{mt}" x2="{X:.1f}" y2="{mt + ph}" stroke="{_GRID}"/>')
        out.append(f'<text x="{X:.1f}" y="{mt + ph + 16}" text-anchor="middle" fill="{_AXIS}">{escape(_fmt_tick(t))}</text>')
    for t in y_ticks:
        Y = sy(t)
        out.append(f'<line x1="{ml}" y1="{Y:.1f}" x2="{ml + pw}" y2="{Y:.1f}" stroke="{_GRID}"/>')
        out.append(f'<text x="{ml - 6}" y="{Y + 4:.1f}" text-anchor="end" fill="{_AXIS}">{escape(f"{t:.4g}")}</text>')
    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="{_AXIS}"/>')
    out.append(
        f'<text x="{ml + pw / 2:.1f}" y="{height - 12}" text-anchor="middle" fill="{_AXIS}">'
        f"{escape(x_label + (' (log scale)' if log_x else ''))}</text>"
    )
    out.append(
        f'<text x="14" y="{mt + ph / 2:.1f}" text-anchor="middle" fill="{_AXIS}" '
        f'transform="rotate(-90 14 {mt + ph / 2:.1f})">{escape(y_label)}</text>'
    )

    front = set(pareto_front([(p.x, p.y) for p in pts]))
    # Staircase through the front: from each front model, right at its AUC, then up to the next.
    fpts = sorted((pts[i] for i in front), key=lambda p: (p.x, p.y))
    if len(fpts) > 1:
        path = [f"{sx(fpts[0].x):.1f},{sy(fpts[0].y):.1f}"]
        for a, b in zip(fpts, fpts[1:]):
            path.append(f"{sx(b.x):.1f},{sy(a.y):.1f}")
            path.append(f"{sx(b.x):.1f},{sy(b.y):.1f}")
        out.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="{_FRONT}" stroke-width="1.5" stroke-dasharray="5 3"/>')

    label_all = len(pts) <= 15  # beyond that the labels of dominated models collide; they keep tooltips
    # Boxes a label must not cover: every marker, then each label as it is placed.
    placed: list[tuple[float, float, float, float]] = [(sx(p.x) - 5, sy(p.y) - 7, sx(p.x) + 5, sy(p.y) + 5) for p in pts]
    # Front first for the labels (they win the free spots); drawn after the others, so on top.
    order = sorted(range(len(pts)), key=lambda i: (i not in front, -pts[i].y))
    points_svg: dict[int, list[str]] = {}
    for i in order:
        p = pts[i]
        on = i in front
        below = floor is not None and p.y < floor
        X, Y = sx(p.x), sy(p.y)
        colour = _FRONT if on else _OTHER
        tip = f"{p.label}: AUC {p.y:.4f}"
        if p.y_low is not None and p.y_high is not None:
            tip += f" [{p.y_low:.4f}, {p.y_high:.4f}]"
        tip += f", {x_label} {_fmt_value(p.x)}" + (" (Pareto front)" if on else "") + (" (below the axis)" if below else "")
        g = [f'<g class="{"front" if on else "point"}"><title>{escape(tip)}</title>']
        if not below and p.y_low is not None and p.y_high is not None and p.y_high > p.y_low:
            g.append(f'<line x1="{X:.1f}" y1="{sy(p.y_low):.1f}" x2="{X:.1f}" y2="{sy(p.y_high):.1f}" stroke="{colour}" stroke-width="1"/>')
        fill = colour if on else "#ffffff"
        if below:
            g.append(f'<path d="M{X - 5:.1f},{Y - 7:.1f} L{X + 5:.1f},{Y - 7:.1f} L{X:.1f},{Y:.1f} Z" fill="{fill}" stroke="{colour}" stroke-width="1.5"/>')
        elif on:
            g.append(f'<circle cx="{X:.1f}" cy="{Y:.1f}" r="4.5" fill="{fill}"/>')
        else:
            g.append(f'<circle cx="{X:.1f}" cy="{Y:.1f}" r="4" fill="{fill}" stroke="{colour}" stroke-width="1.5"/>')
        if on or label_all or below:
            text = p.label + (f" ({p.y:.4f})" if below else "")
            box = _place_label(X, Y - (4 if below else 0), text, placed, (ml, mt, ml + pw, mt + ph))
            if box is not None:
                placed.append(box)
                weight = ' font-weight="bold"' if on else ""
                g.append(
                    f'<text x="{box[0]:.1f}" y="{box[3] - 2:.1f}" fill="{colour}"{weight}>{escape(text)}</text>'
                )
        g.append("</g>")
        points_svg[i] = g
    for i in sorted(points_svg, key=lambda i: i in front):
        out.extend(points_svg[i])
    # legend, in the top margin (inside the plot it would cover points)
    out.append(f'<circle cx="{ml + 4}" cy="{mt - 12}" r="4.5" fill="{_FRONT}"/>')
    out.append(
        f'<text x="{ml + 13}" y="{mt - 8}" fill="{_AXIS}">Pareto front: no other model is both cheaper and better; '
        "bars: 95% interval</text>"
    )
    out.append("</svg>")
    return "\n".join(out)

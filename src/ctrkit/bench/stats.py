"""Small-sample statistics for benchmark seeds and test sets, without scipy.

* :func:`t_quantile` -- two-sided critical values of Student's t at 95% (and 99%) from a table for
  1..30 degrees of freedom, the normal quantile beyond (the error at df=31 is under 3%).
* :func:`mean_std_ci` -- mean, sample std (ddof=1) and the 95% t confidence interval of the mean.
* :func:`paired_t_test` -- paired t statistic over seeds and whether it is significant at 5%
  (two-sided).
* :func:`t_two_sided_p` -- the two-sided p-value of a t statistic (Student's t CDF through the
  regularized incomplete beta function, :func:`betainc`).
* :func:`delong_test` -- DeLong's test for two correlated AUCs (two models scored on the same
  test rows), with the fast mid-rank computation of Sun & Xu (2014).

The leaderboard uses the paired t-test over seeds (see :mod:`ctrkit.bench.report` for why);
DeLong's test is here for comparing two single runs whose test predictions are at hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Two-sided critical values t_{1-alpha/2, df} for df = 1..30.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_T995 = (
    63.657, 9.925, 5.841, 4.604, 4.032, 3.707, 3.499, 3.355, 3.250, 3.169,
    3.106, 3.055, 3.012, 2.977, 2.947, 2.921, 2.898, 2.878, 2.861, 2.845,
    2.831, 2.819, 2.807, 2.797, 2.787, 2.779, 2.771, 2.763, 2.756, 2.750,
)  # fmt: skip
_NORMAL = {0.95: 1.959964, 0.99: 2.575829}
_TABLES = {0.95: _T975, 0.99: _T995}


def t_quantile(df: int, confidence: float = 0.95) -> float:
    """The two-sided critical value of Student's t with ``df`` degrees of freedom."""
    if confidence not in _TABLES:
        raise ValueError(f"confidence must be one of {sorted(_TABLES)}")
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    table = _TABLES[confidence]
    return table[df - 1] if df <= len(table) else _NORMAL[confidence]


def mean_std_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, std, low, high)``: sample std with ddof=1; the t interval of the mean.

    With one value the std is 0 and the interval is the value itself (nothing to estimate).
    """
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("no values")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return mean, 0.0, mean, mean
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1, confidence) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def paired_t_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> tuple[float, bool]:
    """``(t, significant)`` for the paired differences ``a - b`` (two-sided).

    Fewer than two pairs cannot show a difference (not significant). Identical nonzero
    differences have zero variance: significant (t = +-inf); all-zero differences are not.
    """
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(d)
    if n < 2:
        return 0.0, False
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    if var == 0.0:
        if mean == 0.0:
            return 0.0, False
        return math.copysign(math.inf, mean), True
    t = mean / math.sqrt(var / n)
    return t, abs(t) > t_quantile(n - 1, confidence)


# ------------------------------------------------------------------ p-values
def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method).

    Converges fast for ``x < (a + 1) / (a + b + 2)``; :func:`betainc` uses the symmetry
    ``I_x(a, b) = 1 - I_{1-x}(b, a)`` to stay in that region.
    """
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))  # even step
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))  # odd step
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 <= x <= 1``."""
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be positive")
    if not 0.0 <= x <= 1.0:
        raise ValueError("x must be in [0, 1]")
    if x == 0.0 or x == 1.0:
        return x
    # x^a (1-x)^b / (a B(a, b)) in logs: the powers underflow for large a, b.
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom.

    Uses ``P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2)``. ``t = +-inf`` gives 0.
    """
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


def normal_two_sided_p(z: float) -> float:
    """``P(|Z| >= |z|)`` for a standard normal ``Z``."""
    if math.isnan(z):
        return math.nan
    return math.erfc(abs(z) / math.sqrt(2.0))


def paired_t_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The two-sided p-value of :func:`paired_t_test` (``None`` with fewer than two pairs)."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    if len(a) < 2:
        return None
    t, _ = paired_t_test(a, b)
    if t == 0.0:
        return 1.0
    return t_two_sided_p(t, len(a) - 1)


# ------------------------------------------------------------------ DeLong
@dataclass(frozen=True)
class DeLongResult:
    """Two AUCs on the same rows, the standard error of their difference, z and the p-value."""

    auc_a: float
    auc_b: float
    se_diff: float
    z: float
    p_value: float


def _midranks(x: Any) -> Any:
    """1-based ranks of ``x`` with ties given the mean of their ranks (numpy array in and out)."""
    import numpy as np

    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = len(xs)
    ranks_sorted = np.empty(n, dtype=np.float64)
    # Group boundaries of equal values; each group gets the mean of the positions it spans.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], n]
    for s, e in zip(starts, ends):
        ranks_sorted[s:e] = 0.5 * (s + 1 + e)  # mean of s+1 .. e
    out = np.empty(n, dtype=np.float64)
    out[order] = ranks_sorted
    return out


def delong_test(labels: Sequence[int] | Any, scores_a: Sequence[float] | Any, scores_b: Sequence[float] | Any) -> DeLongResult:
    """DeLong, DeLong & Clarke-Pearson (1988): are two correlated AUCs different? (two-sided)

    Both score vectors must be for the same rows (same ``labels``). Each AUC is the Mann-Whitney
    statistic (ties count one half); its structural components ``V10`` (per positive) and ``V01``
    (per negative) come from mid-ranks (Sun & Xu 2014), so the cost is a sort, not m x n pairs.
    ``Var(AUC_a - AUC_b) = c^T (S10 / m + S01 / n) c`` with ``c = (1, -1)`` and ``S10``, ``S01``
    the 2x2 sample covariances of the components. A zero variance (identical scores, or perfect
    separation by both) gives z = 0 and p = 1 when the AUCs are equal.
    """
    import numpy as np

    y = np.asarray(labels).astype(np.int64).ravel()
    sa = np.asarray(scores_a, dtype=np.float64).ravel()
    sb = np.asarray(scores_b, dtype=np.float64).ravel()
    if not (len(y) == len(sa) == len(sb)):
        raise ValueError("labels and both score vectors must have the same length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least two positives and two negatives")
    v10, v01, aucs = [], [], []
    for s in (sa, sb):
        r_all = _midranks(s)
        r_pos = _midranks(s[pos])
        r_neg = _midranks(s[neg])
        # Among all rows, a positive's rank minus its rank among positives counts the negatives
        # below it (ties one half): that is n * V10 for that positive.
        v10_s = (r_all[pos] - r_pos) / n
        v01_s = 1.0 - (r_all[neg] - r_neg) / m
        v10.append(v10_s)
        v01.append(v01_s)
        aucs.append(float(v10_s.mean()))
    s10 = np.cov(np.vstack(v10), ddof=1)
    s01 = np.cov(np.vstack(v01), ddof=1)
    c = np.array([1.0, -1.0])
    var = float(c @ (s10 / m + s01 / n) @ c)
    diff = aucs[0] - aucs[1]
    if var <= 0.0:
        z = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
        return DeLongResult(aucs[0], aucs[1], 0.0, z, 1.0 if diff == 0.0 else 0.0)
    se = math.sqrt(var)
    z = diff / se
    return DeLongResult(aucs[0], aucs[1], se, z, normal_two_sided_p(z))

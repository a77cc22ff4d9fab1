"""Small-sample statistics for benchmark seeds, without scipy.

* :func:`t_quantile` -- two-sided critical values of Student's t at 95% (and 99%) from a table for
  1..30 degrees of freedom, the normal quantile beyond (the error at df=31 is under 3%).
* :func:`mean_std_ci` -- mean, sample std (ddof=1) and the 95% t confidence interval of the mean.
* :func:`paired_t_test` -- paired t statistic over seeds and whether it is significant at 5%
  (two-sided).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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

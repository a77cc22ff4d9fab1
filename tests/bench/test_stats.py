"""t quantiles, confidence intervals, paired t-tests, t p-values and DeLong's test on hand-computed
cases and closed forms (no scipy)."""

from __future__ import annotations

import math

import pytest

from ctrkit.bench.stats import (
    _midranks,
    betainc,
    delong_test,
    mean_std_ci,
    normal_two_sided_p,
    paired_t_p_value,
    paired_t_test,
    t_quantile,
    t_two_sided_p,
)


def test_t_quantile_table_and_normal_tail():
    assert t_quantile(1) == pytest.approx(12.706)
    assert t_quantile(2) == pytest.approx(4.303)
    assert t_quantile(30) == pytest.approx(2.042)
    assert t_quantile(31) == pytest.approx(1.959964)
    assert t_quantile(4, 0.99) == pytest.approx(4.604)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_t_interval_hand_computed():
    # x = 1, 2, 3: mean 2, sample std 1, half width t_{0.975,2} / sqrt(3) = 4.303 / 1.7320508 = 2.484339
    mean, std, lo, hi = mean_std_ci([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0)
    assert lo == pytest.approx(2 - 2.484339, abs=1e-6)
    assert hi == pytest.approx(2 + 2.484339, abs=1e-6)
    assert mean_std_ci([0.7]) == (0.7, 0.0, 0.7, 0.7)


def test_paired_t_test():
    # differences 0.01, 0.02, 0.03: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 3.4641 < 4.303 (df 2)
    t, sig = paired_t_test([0.81, 0.82, 0.83], [0.80, 0.80, 0.80])
    assert t == pytest.approx(2 * math.sqrt(3), rel=1e-9)
    assert not sig
    # the same shifts with five pairs: t = 0.02 / (0.0158114 / sqrt 5) = 2.828 > 2.776
    t, sig = paired_t_test([0.81, 0.82, 0.83, 0.80, 0.84], [0.8] * 5)
    assert t == pytest.approx(2.8284271, rel=1e-6) and sig
    assert paired_t_test([1.0, 2.0], [0.5, 1.5]) == (math.inf, True)  # constant nonzero differences
    assert paired_t_test([0.8, 0.8], [0.8, 0.8]) == (0.0, False)
    assert paired_t_test([0.9], [0.1]) == (0.0, False)


# ------------------------------------------------------------------ p-values
def _p_closed_form(t: float, df: int) -> float:
    """Two-sided Student-t p-values in closed form (the t CDF is elementary for small df)."""
    t = abs(t)
    if df == 1:  # Cauchy
        return 1 - 2 / math.pi * math.atan(t)
    if df == 2:
        return 1 - t / math.sqrt(t * t + 2)
    if df == 3:
        x = t / math.sqrt(3)
        return 1 - 2 / math.pi * (math.atan(x) + x / (1 + x * x))
    if df == 4:
        th = math.atan(t / 2)
        return 1 - math.sin(th) * (1 + math.cos(th) ** 2 / 2)
    raise ValueError(df)


@pytest.mark.parametrize("df", [1, 2, 3, 4])
@pytest.mark.parametrize("t", [0.0, 0.0776, 0.5, 1.0, 2.0, 3.1, 7.5, 40.0])
def test_t_p_value_matches_closed_forms(t, df):
    assert t_two_sided_p(t, df) == pytest.approx(_p_closed_form(t, df), abs=1e-12)
    assert t_two_sided_p(-t, df) == t_two_sided_p(t, df)


def test_t_p_value_agrees_with_the_critical_value_table():
    # The table's 3-decimal critical values sit at p = 0.05 (0.01) up to their rounding.
    for df in range(1, 31):
        assert t_two_sided_p(t_quantile(df), df) == pytest.approx(0.05, abs=6e-4)
        assert t_two_sided_p(t_quantile(df, 0.99), df) == pytest.approx(0.01, abs=2e-4)
    assert t_two_sided_p(math.inf, 3) == 0.0
    assert t_two_sided_p(1e6, 1000) < 1e-300  # far in the tail: no overflow, no negative
    # large df: close to the normal
    assert t_two_sided_p(1.959964, 10_000) == pytest.approx(0.05, abs=2e-4)
    assert normal_two_sided_p(1.959964) == pytest.approx(0.05, abs=1e-6)


def test_betainc_identities():
    # I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 - (1 - x)^b; symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
    for x in (0.0, 0.1, 0.37, 0.5, 0.93, 1.0):
        assert betainc(1, 1, x) == pytest.approx(x, abs=1e-14)
        assert betainc(2.5, 1, x) == pytest.approx(x**2.5, abs=1e-13)
        assert betainc(1, 4, x) == pytest.approx(1 - (1 - x) ** 4, abs=1e-13)
        assert betainc(3.2, 0.7, x) == pytest.approx(1 - betainc(0.7, 3.2, 1 - x), abs=1e-13)
    with pytest.raises(ValueError):
        betainc(0, 1, 0.5)


def test_paired_t_p_value():
    # differences 0.01, 0.02, 0.03: t = 2 sqrt 3 with df 2 -> p = 1 - t / sqrt(t^2 + 2)
    p = paired_t_p_value([0.81, 0.82, 0.83], [0.80, 0.80, 0.80])
    t = 2 * math.sqrt(3)
    assert p == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-9)
    assert paired_t_p_value([1.0, 2.0], [0.5, 1.5]) == 0.0  # constant nonzero differences
    assert paired_t_p_value([0.8, 0.8], [0.8, 0.8]) == 1.0
    assert paired_t_p_value([0.9], [0.1]) is None


# ------------------------------------------------------------------ DeLong
def test_midranks():
    import numpy as np

    assert _midranks(np.array([0.3, 0.1, 0.3, 0.2, 0.3])).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
    assert _midranks(np.array([2.0, 1.0])).tolist() == [2.0, 1.0]


def test_delong_hand_computed():
    # Positives a: 0.9, 0.6, 0.4; negatives a: 0.5, 0.2   -> V10 = (1, 1, 1/2), V01 = (2/3, 1), AUC 5/6
    # Positives b: 0.8, 0.3, 0.7; negatives b: 0.3, 0.6   -> V10 = (1, 1/4, 1), V01 = (5/6, 2/3), AUC 3/4
    # S10: var_a 1/12, var_b 3/16, cov -1/16 -> c'S10c = 19/48, / m=3 -> 19/144
    # S01: var_a 1/18, var_b 1/72, cov -1/36 -> c'S01c = 1/8,   / n=2 ->  9/144
    # Var(diff) = 28/144 = 7/36; z = (1/12) / sqrt(7/36) = 1 / (2 sqrt 7)
    labels = [1, 1, 1, 0, 0]
    r = delong_test(labels, [0.9, 0.6, 0.4, 0.5, 0.2], [0.8, 0.3, 0.7, 0.3, 0.6])
    assert r.auc_a == pytest.approx(5 / 6, abs=1e-12)
    assert r.auc_b == pytest.approx(3 / 4, abs=1e-12)
    assert r.se_diff == pytest.approx(math.sqrt(7 / 36), abs=1e-12)
    assert r.z == pytest.approx(1 / (2 * math.sqrt(7)), abs=1e-12)
    assert r.p_value == pytest.approx(math.erfc(1 / (2 * math.sqrt(7)) / math.sqrt(2)), abs=1e-12)


def _delong_brute_force(labels, a, b):
    """DeLong's variance from the definition: psi over every (positive, negative) pair."""
    pos = [i for i, y in enumerate(labels) if y == 1]
    neg = [i for i, y in enumerate(labels) if y == 0]

    def psi(x, y):
        return 1.0 if x > y else (0.5 if x == y else 0.0)

    comps = []
    for s in (a, b):
        v10 = [sum(psi(s[i], s[j]) for j in neg) / len(neg) for i in pos]
        v01 = [sum(psi(s[i], s[j]) for i in pos) / len(pos) for j in neg]
        comps.append((v10, v01))

    def cov(x, y):
        mx, my = sum(x) / len(x), sum(y) / len(y)
        return sum((p - mx) * (q - my) for p, q in zip(x, y)) / (len(x) - 1)

    (a10, a01), (b10, b01) = comps
    var = (cov(a10, a10) + cov(b10, b10) - 2 * cov(a10, b10)) / len(pos) + (cov(a01, a01) + cov(b01, b01) - 2 * cov(a01, b01)) / len(neg)
    auc_a, auc_b = sum(a10) / len(pos), sum(b10) / len(pos)
    return auc_a, auc_b, math.sqrt(var)


def test_delong_matches_the_definition_with_ties():
    import numpy as np

    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 120)
    a = np.round(y * 0.8 + rng.normal(size=120), 1)  # rounding makes ties
    b = np.round(0.6 * a + y * 0.3 + rng.normal(size=120) * 0.7, 1)
    auc_a, auc_b, se = _delong_brute_force(y.tolist(), a.tolist(), b.tolist())
    r = delong_test(y, a, b)
    assert (r.auc_a, r.auc_b, r.se_diff) == pytest.approx((auc_a, auc_b, se), abs=1e-12)
    assert r.p_value == pytest.approx(math.erfc(abs(auc_a - auc_b) / se / math.sqrt(2)), abs=1e-12)
    # the same scores twice: no difference, p = 1
    same = delong_test(y, a, a)
    assert (same.z, same.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError):
        delong_test([1, 0, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3])  # one negative

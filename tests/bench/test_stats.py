"""t quantiles, confidence intervals and paired t-tests on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from ctrkit.bench.stats import mean_std_ci, paired_t_test, t_quantile


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

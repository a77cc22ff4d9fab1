"""ctrkit.metrics against scikit-learn and hand-computed cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from ctrkit import metrics
from ctrkit.metrics import auc, calibration, evaluate_scores, gauc, logloss, normalized_entropy, sigmoid

sk = pytest.importorskip("sklearn.metrics")


def sk_log_loss(y, p):
    with warnings.catch_warnings():  # scikit-learn 1.9 renamed y_pred to y_proba
        warnings.simplefilter("ignore", FutureWarning)
        return sk.log_loss(y, p, labels=[0, 1])


def _random(seed: int, n: int, ctr: float = 0.3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < ctr).astype(np.int64)
    # Informative scores, so the AUC is far from 0.5 and errors would show.
    s = rng.normal(size=n) + 0.8 * y
    return rng, y, s


# --- AUC -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kind", ["float64", "float32", "rounded", "int"])
def test_auc_matches_sklearn(seed, kind):
    rng, y, s = _random(seed, 2000 + 500 * seed)
    if kind == "float32":
        s = s.astype(np.float32)
    elif kind == "rounded":  # heavy ties, not float32-representable: the dense-rank path
        s = np.round(1 / (1 + np.exp(-s)), 1)
        assert np.unique(s).size <= 11
    elif kind == "int":
        s = np.round(s * 2).astype(np.int64)
    assert auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)


def test_auc_hand_computed():
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert auc([0, 1], [0.2, 0.9]) == 1.0
    assert auc([0, 1], [0.9, 0.2]) == 0.0
    # Ties count one half: pos 0.5 vs neg 0.5 -> 0.5; pos 0.5 vs neg 0.1 -> 1.
    assert auc([1, 0, 0], [0.5, 0.5, 0.1]) == pytest.approx(0.75)


def test_auc_all_ties_is_half_and_one_class_is_nan():
    y = np.array([0, 1, 1, 0, 1])
    assert auc(y, np.full(5, 0.3)) == 0.5
    assert auc(y, np.full(5, 0.3, dtype=np.float32)) == 0.5
    assert math.isnan(auc(np.zeros(4), np.arange(4.0)))
    assert math.isnan(auc(np.ones(4), np.arange(4.0)))
    assert math.isnan(auc([], []))


def test_auc_signed_scores_and_special_values():
    # Negative scores, -0.0 vs 0.0 (equal: a tie), infinities, in both float32 and float64.
    s = np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, np.inf])
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    # Pairs won by each positive: -3.5 -> 1, -0.0 -> 2 + 0.5 (tie with 0.0), 1e-30 -> 3, inf -> 4.
    assert auc(y, s) == 10.5 / 16
    assert auc(y, s.astype(np.float32)) == 10.5 / 16
    finite = np.clip(s, -1e30, 1e30)  # scikit-learn refuses infinities
    assert auc(y, finite) == pytest.approx(sk.roc_auc_score(y, finite))
    assert sk.roc_auc_score(y, finite) == 10.5 / 16
    assert auc([1, 0], [-0.0, 0.0]) == 0.5
    assert auc([1, 0], np.array([-0.0, 0.0], dtype=np.float32)) == 0.5


def test_auc_rejects_length_mismatch():
    with pytest.raises(ValueError):
        auc([0, 1, 1], [0.1, 0.2])


# --- logloss, NE, calibration ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_logloss_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(3000) < 0.2).astype(np.int64)
    p = np.clip(rng.beta(1, 4, size=3000), 1e-3, 1 - 1e-3)
    assert logloss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-12)
    assert logloss(y, p.astype(np.float32)) == pytest.approx(sk_log_loss(y, p.astype(np.float32)), rel=1e-6)


def test_logloss_clips_at_1e7():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.0, 1.0, 1e-12, 0.5])
    # FuxiCTR's clipping: each saturated prediction costs -log(1e-7), not infinity.
    assert logloss(y, p) == pytest.approx(sk_log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), rel=1e-12)
    assert logloss(y, p) == pytest.approx((3 * -math.log(1e-7) + math.log(2)) / 4, rel=1e-6)
    assert logloss([1, 0], [1.0, 0.0]) == pytest.approx(-math.log(1 - 1e-7))


def test_logloss_hand_computed_and_length_check():
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    with pytest.raises(ValueError):
        logloss([1, 0, 1], [0.5])  # would broadcast silently without the check


def test_normalized_entropy():
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.17).astype(np.int64)
    ctr = y.mean()
    # The base-rate predictor has NE exactly 1.
    assert normalized_entropy(y, np.full(y.size, ctr)) == pytest.approx(1.0, rel=1e-12)
    # NE = logloss / entropy(ctr).
    p = np.clip(0.1 + 0.6 * y + rng.normal(0, 0.05, y.size), 0.01, 0.99)
    h = -(ctr * math.log(ctr) + (1 - ctr) * math.log(1 - ctr))
    assert normalized_entropy(y, p) == pytest.approx(sk_log_loss(y, p) / h, rel=1e-12)
    assert normalized_entropy(y, p) < 1.0
    # A constant that is not the base rate is worse than it.
    assert normalized_entropy(y, np.full(y.size, 0.5)) > 1.0


def test_calibration():
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0])  # CTR 0.25
    assert calibration(y, np.full(8, 0.25)) == pytest.approx(1.0)
    assert calibration(y, np.full(8, 0.5)) == pytest.approx(2.0)
    assert calibration(y, np.linspace(0.0, 0.25, 8)) == pytest.approx(0.125 / 0.25)
    assert math.isnan(calibration(np.zeros(3), [0.1, 0.2, 0.3]))
    with pytest.raises(ValueError):
        calibration(y, [0.5])


def test_sigmoid_is_stable_at_extreme_logits():
    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning
        p = sigmoid(x)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p[1:4], 1 / (1 + np.exp(-x[1:4].astype(np.float64))), rtol=1e-15)
    assert p[0] == 0.0 and p[-1] == 1.0 and p[2] == 0.5


def test_evaluate_scores_from_logits():
    rng, y, s = _random(3, 4000)
    groups = rng.integers(0, 50, y.size)
    out = evaluate_scores(y, s.astype(np.float32), groups)
    p = 1 / (1 + np.exp(-s.astype(np.float32).astype(np.float64)))
    assert set(out) == {"auc", "logloss", "ne", "calibration", "gauc"}
    assert out["auc"] == pytest.approx(sk.roc_auc_score(y, s.astype(np.float32)), abs=1e-12)
    assert out["logloss"] == pytest.approx(sk_log_loss(y, p), rel=1e-9)
    assert out["calibration"] == pytest.approx(p.mean() / y.mean())
    assert out["gauc"] == pytest.approx(gauc(y, p, groups), abs=1e-12)  # monotone: logits or probs
    assert "gauc" not in evaluate_scores(y, s)


# --- gAUC ----------------------------------------------------------------------------------------


def test_gauc_hand_computed():
    # Group 7: labels [1, 0, 0, 1], scores [0.9, 0.3, 0.9, 0.2]. Pos-neg pairs: (0.9, 0.3) -> 1,
    #   (0.9, 0.9) -> 0.5, (0.2, 0.3) -> 0, (0.2, 0.9) -> 0: AUC 1.5 / 4 = 0.375, 4 impressions.
    # Group 2: labels [0, 1, 0], scores [0.1, 0.5, 0.4]: AUC 1, 3 impressions.
    # Group 5: labels [1, 1], one class: skipped (its weight does not count either).
    rows = [
        (7, 1, 0.9), (2, 0, 0.1), (5, 1, 0.6), (7, 0, 0.3), (2, 1, 0.5),
        (7, 0, 0.9), (5, 1, 0.2), (2, 0, 0.4), (7, 1, 0.2),
    ]  # fmt: skip
    g, y, s = (np.array(c) for c in zip(*rows))
    expected = (4 * 0.375 + 3 * 1.0) / 7
    assert gauc(y, s, g) == pytest.approx(expected, abs=1e-15)
    # Same with float32 scores (fast path), string and float group ids (dense-code path).
    assert gauc(y, s.astype(np.float32), g) == pytest.approx(expected, abs=1e-15)
    assert gauc(y, s, np.array(["u7", "u2", "u5"])[np.searchsorted([7, 2, 5], g, sorter=[1, 2, 0])]) == (
        pytest.approx(expected, abs=1e-15)
    )
    assert gauc(y, s, g.astype(np.float64) + 0.5) == pytest.approx(expected, abs=1e-15)
    # Weighting is by impressions, not a plain mean of the group AUCs (0.6875).
    assert abs(expected - (0.375 + 1.0) / 2) > 0.04


def test_gauc_edge_cases():
    assert math.isnan(gauc([1, 1, 0], [0.1, 0.2, 0.3], [1, 1, 2]))  # every group one class
    assert math.isnan(gauc([], [], []))
    assert gauc([0, 1], [0.3, 0.3], [4, 4]) == 0.5  # all ties
    # One group == plain AUC.
    _, y, s = _random(0, 500)
    assert gauc(y, s, np.zeros(y.size, dtype=np.int64)) == pytest.approx(auc(y, s), abs=1e-15)
    with pytest.raises(ValueError):
        gauc([0, 1], [0.1, 0.2], [1])


def _reference_gauc(y, s, g):
    """Impression-weighted mean of scikit-learn's per-group AUC over two-class groups."""
    total, weight = 0.0, 0
    for k in np.unique(g):
        m = g == k
        if 0 < y[m].sum() < m.sum():
            total += sk.roc_auc_score(y[m], s[m]) * m.sum()
            weight += m.sum()
    return total / weight


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["float32", "rounded", "float64"])
def test_gauc_matches_per_group_sklearn(seed, kind):
    rng, y, s = _random(seed, 4000, ctr=0.25)
    g = rng.integers(-30, 270, y.size)  # negative ids too; many small groups, some one-class
    if kind == "float32":
        s = s.astype(np.float32)
    elif kind == "rounded":  # heavy ties inside groups
        s = np.round(1 / (1 + np.exp(-s)), 1)
    assert gauc(y, s, g) == pytest.approx(_reference_gauc(y, s, g), abs=1e-12)


def test_gauc_group_id_dtypes():
    rng, y, s = _random(11, 3000)
    g = rng.integers(0, 40, y.size)
    expected = _reference_gauc(y, s, g)
    huge = (np.arange(40, dtype=np.int64) - 20) * 2**58  # id range > 2^32: the dense-code path
    for ids in (g.astype(np.uint8), g.astype(np.uint64), g.astype(np.int16) - 20, huge[g], g.astype(str)):
        assert gauc(y, s, ids) == pytest.approx(expected, abs=1e-12)
    # Bool groups: two groups.
    b = g % 2 == 0
    assert gauc(y, s, b) == pytest.approx(_reference_gauc(y, s, b.astype(int)), abs=1e-12)


def test_gauc_indirect_sort_fallback(monkeypatch):
    # When group and score codes do not fit one 64-bit key the indirect (lexsort) path is used;
    # force it by claiming the score codes need 60 bits.
    rng, y, s = _random(5, 3000)
    s = np.round(s, 1)
    g = rng.integers(0, 100, y.size)
    expected = gauc(y, s, g)
    real = metrics._score_codes
    monkeypatch.setattr(metrics, "_score_codes", lambda x: (real(x)[0], 60))
    assert gauc(y, s, g) == pytest.approx(expected, abs=1e-15)
    assert gauc(y, s, g) == pytest.approx(_reference_gauc(y, s, g), abs=1e-12)

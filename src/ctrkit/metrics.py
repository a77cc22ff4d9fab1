"""Evaluation metrics: AUC, logloss, gAUC, normalized entropy, calibration.

All take numpy arrays (labels in {0, 1}, scores or probabilities) and return Python floats.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank (as in the Mann-Whitney U)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Start of every run of equal values, and its length.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    counts = np.diff(np.r_[starts, xs.size])
    avg = starts + (counts + 1) / 2.0  # average of 1-based ranks start+1 .. start+count
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, counts)
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC; tied scores count one half. NaN if only one class is present."""
    y = np.asarray(labels).ravel() > 0.5
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size != s.size:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities (clipped to [1e-7, 1 - 1e-7], as sklearn does)."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probs, dtype=np.float64).ravel(), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def normalized_entropy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Logloss divided by the entropy of the base rate (He et al., ADKDD 2014). Below 1 is better
    than always predicting the average CTR."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    ctr = float(np.clip(y.mean(), _EPS, 1 - _EPS))
    base = -(ctr * np.log(ctr) + (1 - ctr) * np.log(1 - ctr))
    return logloss(y, probs) / base


def calibration(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean prediction / mean label; 1.0 is perfectly calibrated on average."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    m = y.mean()
    return float(np.mean(probs) / m) if m > 0 else float("nan")


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC as in DIN (Zhou et al., KDD 2018): per-group AUC weighted by the group's
    impressions; groups whose labels are all one class are skipped."""
    y = np.asarray(labels).ravel() > 0.5
    s = np.asarray(scores, dtype=np.float64).ravel()
    g = np.asarray(groups).ravel()
    order = np.lexsort((s, g))  # by group, then score: one sort for every group
    y, s, g = y[order], s[order], g[order]
    bounds = np.flatnonzero(np.r_[True, g[1:] != g[:-1], True])
    total_w, total = 0.0, 0.0
    for a, b in zip(bounds[:-1], bounds[1:]):
        yy = y[a:b]
        n_pos = int(yy.sum())
        if n_pos == 0 or n_pos == b - a:
            continue
        total += auc(yy, s[a:b]) * (b - a)
        total_w += b - a
    return float(total / total_w) if total_w else float("nan")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def evaluate_scores(
    labels: np.ndarray, logits: np.ndarray, groups: np.ndarray | None = None
) -> dict[str, float]:
    """Every metric for one task from logits: auc, logloss, ne, calibration (and gauc with groups)."""
    p = sigmoid(logits)
    out = {
        "auc": auc(labels, logits),
        "logloss": logloss(labels, p),
        "ne": normalized_entropy(labels, p),
        "calibration": calibration(labels, p),
    }
    if groups is not None:
        out["gauc"] = gauc(labels, logits, groups)
    return out

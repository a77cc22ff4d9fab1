"""Synthetic CTR data with a known ground truth: the ceiling any model can reach.

:func:`synthesize` writes raw files the real pipeline reads (``train/valid/test.<ext>``), a
``schema.yaml`` for them, and ``truth.json`` with the *Bayes-optimal* metrics: labels are Bernoulli
draws from a planted click probability that is a deterministic function of the observed columns, so
scoring each row with its true probability is the best any model can do. A model's test AUC should
approach ``truth["bayes"]["test"]["click"]["auc"]`` from below; it can exceed it only by the
sampling noise of a finite test set (about +-0.002 AUC at 100k test rows).
The true probabilities are also written per split to ``<split>_truth.parquet`` (never into the
data files).

Columns
-------
In this order (the first line is a header unless ``header=False``):

``click`` (0/1), ``conversion`` (0/1, ``funnel`` only), ``domain`` (integer ``0..domains-1``,
``domains > 0`` only), ``I1..I<num_numeric>`` (non-negative integer counts), ``C1..C<num_categorical>``
(8-character hex-like tokens, unique within a field, starting with a letter), and with
``sequence``: ``user_id`` (``u<k>``), ``item_id`` (target item, ``i<k>``), ``item_cat`` (the target
item's category, ``cat<k>``), ``hist_items`` (``^``-joined item tokens, oldest first) and
``hist_cats`` (the matching categories). Missing numeric and categorical values (each cell
independently with ``missing_rate``) and empty histories are empty cells (nulls in Parquet). Ids,
categories and the domain are never missing.

``schema.yaml`` lists ``I*`` as numeric (``normalizer: log``), ``C*``, ``user_id``, ``item_id``,
``item_cat`` and ``domain`` as categorical, ``hist_items`` / ``hist_cats`` as sequences sharing the
vocabulary of ``item_id`` / ``item_cat`` (``max_len: sequence_length``), the tasks ``click`` (and
``conversion``), ``group: user_id`` with ``sequence`` and ``domain: domain`` with ``domains``.

Draws
-----
* **Categorical field** ``C<j>`` with cardinality ``K``: a value's *rank* ``r`` follows a truncated,
  discretised power law, ``r = floor(X) - 1`` with ``X`` on ``[1, K+1)`` of density
  ``~ x^-zipf_exponent`` (so ``P(r) ~ (r+1)^-zipf_exponent``; the exact probabilities are used
  below). The value's token is a bijective 32-bit hash of the rank. Default cardinalities are
  Criteo's 26, capped at 100,000 (or ``geomspace(10, 100_000)`` for another field count).
* **Numeric field** ``I<j>``: zero with a field-specific probability in ``[0, 0.3)``, else
  ``floor(exp(N(mu, sigma)))`` (log-normal, 60% of the fields) or Lomax/Pareto-II
  ``floor(xm * (U^(-1/alpha) - 1))`` with ``alpha`` in ``[1.1, 2.5)``; capped at 1e9.
* **Domains** (``domains = D > 0``): ``P(domain = d) ~ 1/(d+1)``. Domain ``d > 0`` shifts the data:
  for every categorical field a domain-specific permutation of the field's 20 most frequent values,
  and for every numeric field a shift ``N(0, 0.3^2)`` of ``mu`` (log-normal) or ``log xm`` (Pareto).
* **Sequences** (``sequence=True``): ``num_users = clip(rows // 20, 50, 200_000)`` users with
  power-law activity (exponent 0.9); ``num_items = clip(rows // 5, 500, 100_000)`` items in
  ``num_categories = clip(num_items // 20, 2, 50)`` categories (every category has at least one item;
  category popularity ~ 1/(rank+1)); within a category an item's rank is log-uniform
  (``P ~ 1/rank``). Each user has 3 distinct *interest* categories (drawn by popularity). The target
  item's category is one of the user's interests with probability 0.5, else drawn by popularity.
  History length is ``floor((sequence_length + 1) * U^1.5)`` (in ``[0, sequence_length]``, mean
  ~0.4 * ``sequence_length``); each history item's category is one of the user's interests with
  probability 0.8, else drawn by popularity.
* **Funnel** (``funnel=True``): ``conversion = click * Bernoulli(p_cvr)``.

Planted model
-------------
All effects are functions of *observed* values only (a missing value contributes 0)::

    logit_click = bias
                + signal_scale * ( domain_bias[d]                                   (domains)
                  + sum_{f in F1} s[d, f] * w_f[v_f]                                 first order
                  + sum_{f in N1} s[d, f] * b_f * phi_f(x_f)                         numeric
                  + sum_{(a, b) in P} W_ab[v_a, v_b]                                 pairwise
                  + sum_{(a, b, c) in T} W_abc[v_a, v_b, v_c]                        triples
                  + u[user] + t[item] + gamma * log1p(k) / log1p(sequence_length / 4) )  (sequence)
    p_click = sigmoid(logit_click)

* ``F1``: a random 60% of the categorical fields (at least one) with importance ``a_f ~ U(0.5, 1.5)``;
  ``w_f`` i.i.d. normal per value, then centred and scaled under the field's exact value
  distribution so that the first-order part has mean 0 and standard deviation 0.7 (a field's share
  of the variance is ``a_f^2 / sum a^2``).
* ``N1``: a random 70% of the numeric fields (at least one). With ``g = clip((log1p(x) - m) / s, -4, 4)``
  (``m``, ``s`` the mean and sd of ``log1p(x)`` in the field's base distribution) and
  ``c_f ~ U(-0.4, 0.4)``, ``phi_f`` is ``g + c_f * g^2`` standardised on a 50,000-draw reference
  sample; the ``b_f`` (random signs, importances ``U(0.5, 1.5)``) make the numeric part's sd 0.45.
* ``P``: ``num_pairwise`` distinct random field pairs. ``W_ab`` is non-zero only when *both* values
  are among their field's 20 most frequent values (so every non-zero cell is seen often enough to be
  learned): a normal table projected onto its *pure* interaction (weighted double centring under the
  value distribution, so no first-order model can represent any of it), scaled so the pairwise part
  has sd 0.6. ``T``: ``num_triples`` distinct random field triples, likewise with the top 8 values, a
  pure three-way interaction (weighted ANOVA projection), total sd 0.35.
* Sequence: ``u`` and ``t`` are per-user and per-item biases ``N(0, 0.25^2)``; ``k`` is the number of
  history items whose category equals the target item's category, ``gamma = 1.5``. The bonus depends
  on the history *as observed* (not on the latent interests), and on the target: attention over the
  history keyed by the target item beats mean pooling, and a model that sees the whole history beats
  one that keeps only the most recent items.
* Domains: ``domain_bias ~ N(0, 0.4^2)``; ``s[0, :] = 1`` and for ``d > 0`` each effect in ``F1`` and
  ``N1`` is, with probability 1/2 each, left alone or altered: sign-flipped (probability 0.4) or
  scaled by ``U(0.3, 2.0)``. So one shared model without domain interactions is suboptimal.
* ``bias`` is solved (Newton) so that the mean ``p_click`` over all generated rows is ``base_ctr``.
* Conversion: ``logit_cvr = bias_cvr + signal_scale * (cvr_domain_bias[d] + sum_{f in F1} w'_f[v_f]
  + sum_{f in N1} b'_f * phi_f(x_f))`` with ``w' = 0.5 w + sqrt(0.75) w_indep`` (scaled to sd 0.6),
  ``b'`` likewise (sd 0.3), ``cvr_domain_bias ~ N(0, 0.3^2)``; ``bias_cvr`` makes the mean ``p_cvr`` over
  clicks ``base_cvr``. ``p_conversion = p_click * p_cvr`` is the Bayes score for the ``conversion``
  task over all impressions.

The planted parameters depend only on ``seed`` and the structural options (field counts and
cardinalities, exponents, ``sequence_length``, ``domains``); with ``sequence`` the user and item counts
also depend on ``rows``. Same config -> byte-identical files.

truth.json
----------
``config`` (every option), ``rows`` per split, ``planted`` (the bias, which fields carry which
effects, realised sd of each logit component), and ``bayes.<valid|test>``: for ``click`` (and
``conversion``) the ``auc`` and ``logloss`` of the true probability, the label rate ``ctr`` and mean
true probability ``mean_p``; ``cvr_on_clicks`` (``p_cvr`` on clicked rows); ``click_gauc`` (grouped by
user, with ``sequence``); ``domains`` (the same per domain). All computed with :mod:`ctrkit.metrics`.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
import shutil
import sys
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ctrkit import metrics
from ctrkit.errors import ConfigError, DataError
from ctrkit.schema import FeatureSchema

__all__ = ["SynthConfig", "SynthResult", "load_truth", "synthesize", "CRITEO_CARDINALITIES"]

#: The 26 categorical cardinalities of Criteo's Kaggle display-advertising data.
CRITEO_CARDINALITIES: tuple[int, ...] = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip
_MAX_DEFAULT_CARDINALITY = 100_000

# Standard deviations of the logit components (before signal_scale); see the module docstring.
_SD_FIRST = 0.7
_SD_NUMERIC = 0.45
_SD_PAIR = 0.6
_SD_TRIPLE = 0.35
_SD_USER = 0.25
_SD_ITEM = 0.25
_SEQ_GAMMA = 1.5
_SD_DOMAIN = 0.4
_SD_CVR_FIRST = 0.6
_SD_CVR_NUMERIC = 0.3
_SD_CVR_DOMAIN = 0.3
_CVR_RHO = 0.5

_FRAC_FIRST = 0.6  # share of categorical fields with a first-order effect
_FRAC_NUMERIC = 0.7  # share of numeric fields with an effect
_TOP_PAIR = 20  # pairwise crosses live on each field's 20 most frequent values
_TOP_TRIPLE = 8
_TOP_DOMAIN_SHIFT = 20
_NUM_INTERESTS = 3
_P_TARGET_INTEREST = 0.5
_P_HIST_INTEREST = 0.8
_NUMERIC_CAP = 1e9
_REF_DRAWS = 50_000
_CHUNK_ROWS = 1 << 18  # rows per write chunk (fixed: part of the byte-identical promise)
_GENERATOR_VERSION = 1

# Sub-stream tags for np.random.default_rng([seed, tag, ...]): one stream per purpose, so e.g. the
# categorical weights do not change when num_numeric does.
_S_CAT, _S_NUM, _S_PAIR, _S_TRIPLE, _S_SEQ, _S_DOMAIN, _S_CVR, _S_DATA, _S_LABEL, _S_STRUCT = range(10)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. See the module docstring for what every option does to the planted model."""

    rows: int = 100_000  # total rows, split train/valid/test by the fractions below
    num_numeric: int = 13  # Criteo-shaped default: 13 numeric + 26 categorical
    num_categorical: int = 26
    cardinalities: tuple[int, ...] | None = None  # per categorical field; None: Criteo-like spread
    zipf_exponent: float = 1.1
    missing_rate: float = 0.05  # per numeric / categorical cell
    num_pairwise: int = 10  # planted pairwise crosses between categorical fields
    num_triples: int = 3  # planted third-order crosses
    base_ctr: float = 0.25
    signal_scale: float = 1.0
    sequence: bool = False  # user_id, item_id, item_cat, hist_items, hist_cats
    sequence_length: int = 20  # max history length
    funnel: bool = False  # click -> conversion
    domains: int = 0  # > 0: that many domains with shifted data and domain-specific effects
    format: Literal["csv", "tsv", "parquet"] = "tsv"
    header: bool = True  # csv / tsv only
    seed: int = 2024
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    base_cvr: float = 0.1  # mean p(conversion | click), funnel only

    def __post_init__(self) -> None:
        def bad(key: str, msg: str) -> ConfigError:
            return ConfigError(msg, key=key)

        if self.cardinalities is not None:
            object.__setattr__(self, "cardinalities", tuple(int(c) for c in self.cardinalities))
        int_keys = ("rows", "num_numeric", "num_categorical", "num_pairwise", "num_triples", "domains",
                    "sequence_length", "seed")  # fmt: skip
        for key in int_keys:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise bad(key, f"must be a non-negative integer, got {v!r}")
            object.__setattr__(self, key, int(v))
        if self.num_numeric + self.num_categorical == 0 and not self.sequence:
            raise bad("num_categorical", "need at least one feature")
        if self.cardinalities is not None:
            if len(self.cardinalities) != self.num_categorical:
                raise bad(
                    "cardinalities",
                    f"has {len(self.cardinalities)} entries for {self.num_categorical} categorical fields",
                )
            if any(c < 1 or c >= 2**31 for c in self.cardinalities):
                raise bad("cardinalities", "every cardinality must be in [1, 2^31)")
        if not (self.zipf_exponent >= 0 and math.isfinite(self.zipf_exponent)):
            raise bad("zipf_exponent", f"must be >= 0, got {self.zipf_exponent}")
        if not 0 <= self.missing_rate < 1:
            raise bad("missing_rate", f"must be in [0, 1), got {self.missing_rate}")
        m = self.num_categorical
        if self.num_pairwise > m * (m - 1) // 2:
            raise bad("num_pairwise", f"{self.num_pairwise} distinct pairs of {m} fields do not exist")
        if self.num_triples > m * (m - 1) * (m - 2) // 6:
            raise bad("num_triples", f"{self.num_triples} distinct triples of {m} fields do not exist")
        for key in ("base_ctr", "base_cvr"):
            if not 0 < getattr(self, key) < 1:
                raise bad(key, f"must be in (0, 1), got {getattr(self, key)}")
        if not (self.signal_scale >= 0 and math.isfinite(self.signal_scale)):
            raise bad("signal_scale", f"must be >= 0, got {self.signal_scale}")
        if self.sequence_length < 1:
            raise bad("sequence_length", f"must be >= 1, got {self.sequence_length}")
        if self.format not in ("csv", "tsv", "parquet"):
            raise bad("format", f"must be csv, tsv or parquet, got {self.format!r}")
        for key in ("valid_fraction", "test_fraction"):
            if not 0 < getattr(self, key) < 1:
                raise bad(key, f"must be in (0, 1), got {getattr(self, key)}")
        n_train, n_valid, n_test = self.split_sizes
        if min(n_train, n_valid, n_test) < 1:
            raise bad("rows", f"{self.rows} rows leave an empty split ({n_train}/{n_valid}/{n_test})")

    @property
    def split_sizes(self) -> tuple[int, int, int]:
        """Rows in (train, valid, test)."""
        n_valid = int(round(self.rows * self.valid_fraction))
        n_test = int(round(self.rows * self.test_fraction))
        return self.rows - n_valid - n_test, n_valid, n_test

    @property
    def field_cardinalities(self) -> tuple[int, ...]:
        """The cardinality of every categorical field (the default spread when not given)."""
        if self.cardinalities is not None:
            return self.cardinalities
        m = self.num_categorical
        if m == len(CRITEO_CARDINALITIES):
            return tuple(min(c, _MAX_DEFAULT_CARDINALITY) for c in CRITEO_CARDINALITIES)
        return tuple(int(round(c)) for c in np.geomspace(10, _MAX_DEFAULT_CARDINALITY, m))

    @property
    def extension(self) -> str:
        return self.format

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cardinalities"] = list(self.field_cardinalities)
        return d


@dataclass(frozen=True)
class SynthResult:
    """What :func:`synthesize` wrote."""

    out_dir: Path
    paths: dict[str, Path]  # split ("train", "valid", "test") -> data file
    schema_path: Path
    truth_path: Path
    truth_paths: dict[str, Path]  # split -> <split>_truth.parquet (true probabilities per row)
    truth: dict[str, Any]
    rows: dict[str, int] = field(default_factory=dict)


def load_truth(directory: str | Path) -> dict[str, Any]:
    """The ``truth.json`` of a directory written by :func:`synthesize`."""
    p = Path(directory) / "truth.json"
    if not p.exists():
        raise DataError("no truth.json here: not a directory written by synthesize()", file=p)
    return json.loads(p.read_text())


# ======================================================================================= helpers
def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _powerlaw_cdf(x: np.ndarray, k: int, s: float) -> np.ndarray:
    """CDF on ``[1, k+1]`` of the density ``~ x^-s``."""
    if abs(s - 1.0) < 1e-12:
        return np.log(x) / math.log(k + 1)
    a = 1.0 - s
    return (np.power(x, a) - 1.0) / ((k + 1.0) ** a - 1.0)


def _powerlaw_ranks(rng: np.random.Generator, n: int, k: int, s: float) -> np.ndarray:
    """``n`` ranks in ``[0, k)`` with ``P(r) = F(r+2) - F(r+1)`` (see :func:`_powerlaw_probs`)."""
    u = rng.random(n)
    if abs(s - 1.0) < 1e-12:
        x = np.exp(u * math.log(k + 1))
    else:
        a = 1.0 - s
        x = np.power(1.0 + u * ((k + 1.0) ** a - 1.0), 1.0 / a)
    return np.clip(np.floor(x).astype(np.int64) - 1, 0, k - 1)


def _powerlaw_probs(k: int, s: float) -> np.ndarray:
    """The exact probability of every rank drawn by :func:`_powerlaw_ranks`."""
    p = np.diff(_powerlaw_cdf(np.arange(1, k + 2, dtype=np.float64), k, s))
    return p / p.sum()


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 (computed in uint64)."""
    m = np.uint64(0xFFFFFFFF)
    h = h.astype(np.uint64) & m
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & m
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & m
    h ^= h >> np.uint64(16)
    return h


def _hex_vocab(salt: int, ranks: np.ndarray) -> pl.Series:
    """The hex-like tokens of ``ranks`` (distinct ranks give distinct tokens), then a null.

    A token is the 32-bit hash of the rank in 8 hex digits, except that the first digit is written
    as a letter ``a..p`` (so it stays a bijection, and no reader can take a column for numbers).
    """
    h = _fmix32(ranks.astype(np.uint64) ^ np.uint64(salt))
    lead = "abcdefghijklmnop"
    return pl.Series([f"{lead[x >> 28]}{x & 0xFFFFFFF:07x}" for x in h.tolist()] + [None], dtype=pl.String)


def _prefixed_vocab(prefix: str, ids: np.ndarray) -> pl.Series:
    return pl.Series([f"{prefix}{x}" for x in ids.tolist()] + [None], dtype=pl.String)


def _weighted_mean(a: np.ndarray, q: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * a.ndim
    shape[axis] = -1
    return np.sum(a * q.reshape(shape), axis=axis, keepdims=True)


def _pure_interaction(g: np.ndarray, qs: list[np.ndarray]) -> np.ndarray:
    """Project ``g`` onto its pure highest-order interaction under the product distribution ``qs``
    (``sum over subsets S of axes of (-1)^|S| * weighted mean of g over S``): every weighted mean
    over any one axis of the result is zero, so no lower-order model can represent it."""
    out = np.zeros_like(g)
    for r in range(g.ndim + 1):
        for axes in itertools.combinations(range(g.ndim), r):
            m = g
            for ax in axes:
                m = _weighted_mean(m, qs[ax] / qs[ax].sum(), ax)
            out = out + ((-1) ** r) * m
    return out


def _calibrate(z: np.ndarray, target: float, weights: np.ndarray | None = None) -> float:
    """The ``b`` with ``weighted mean of sigmoid(b + z) == target`` (Newton, bisection-guarded)."""
    w = np.ones_like(z) if weights is None else weights
    wsum = float(w.sum())
    lo, hi = -40.0 - float(z.max()), 40.0 - float(z.min())
    b = math.log(target / (1 - target)) - float(np.average(z, weights=w)) if wsum > 0 else 0.0
    for _ in range(100):
        p = metrics.sigmoid(b + z)
        f = float(np.dot(w, p)) / wsum - target
        if abs(f) < 1e-12:
            break
        if f > 0:
            hi = b
        else:
            lo = b
        d = float(np.dot(w, p * (1 - p))) / wsum
        nb = b - f / d if d > 0 else (lo + hi) / 2
        b = nb if lo < nb < hi else (lo + hi) / 2
    return b


def _scaled_normal(rng: np.random.Generator, n: int, probs: np.ndarray, sd: float) -> np.ndarray:
    """``n`` normal weights centred and scaled to mean 0, sd ``sd`` under the distribution ``probs``."""
    w = rng.standard_normal(n)
    w -= np.dot(probs, w)
    v = float(np.dot(probs, w * w))
    return w * (sd / math.sqrt(v)) if v > 0 else np.zeros(n)


def _pad(w: np.ndarray) -> np.ndarray:
    """Append a zero: the weight of the missing-value index."""
    return np.concatenate([w, np.zeros((1,) + w.shape[1:], dtype=w.dtype)])


# ===================================================================================== generator
@dataclass
class _Generated:
    """Everything about the rows, as arrays (nothing rendered to strings yet)."""

    n: int
    click: np.ndarray
    p_click: np.ndarray
    conversion: np.ndarray | None = None
    p_cvr: np.ndarray | None = None
    domain: np.ndarray | None = None
    numeric: list[np.ndarray] = field(default_factory=list)  # float64, NaN = missing
    cat_idx: list[np.ndarray] = field(default_factory=list)  # int32 value rank, K = missing
    cat_remap: list[np.ndarray] = field(default_factory=list)  # rank -> row of cat_vocab
    cat_vocab: list[pl.Series] = field(default_factory=list)  # tokens of the values that occur
    user: np.ndarray | None = None
    item: np.ndarray | None = None
    item_cat: np.ndarray | None = None
    hist_items: np.ndarray | None = None  # flat, all rows
    hist_cats: np.ndarray | None = None
    hist_offsets: np.ndarray | None = None  # n + 1
    user_vocab: pl.Series | None = None
    item_vocab: pl.Series | None = None
    cat_token_vocab: pl.Series | None = None
    planted: dict[str, Any] = field(default_factory=dict)


def _numeric_draw(
    rng: np.random.Generator, n: int, spec: dict[str, float], shift: np.ndarray | float
) -> np.ndarray:
    """Heavy-tailed non-negative counts (float64) for one numeric field."""
    u = rng.random(n)
    if spec["lognormal"]:
        x = np.exp(spec["mu"] + shift + spec["sigma"] * rng.standard_normal(n))
    else:
        x = spec["xm"] * np.exp(shift) * (np.power(1.0 - rng.random(n), -1.0 / spec["alpha"]) - 1.0)
    x = np.floor(np.minimum(x, _NUMERIC_CAP))
    x[u < spec["zero"]] = 0.0
    return x


def _generate(cfg: SynthConfig) -> _Generated:
    n = cfg.rows
    seed = cfg.seed
    scale = cfg.signal_scale
    cards = cfg.field_cardinalities
    m, q = cfg.num_categorical, cfg.num_numeric
    D = cfg.domains
    data = _rng(seed, _S_DATA)
    struct = _rng(seed, _S_STRUCT)
    planted: dict[str, Any] = {}
    logit = np.zeros(n)
    components: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------- domains
    domain = None
    dom_scale_cat = np.ones((max(D, 1), m))
    dom_scale_num = np.ones((max(D, 1), q))
    if D > 0:
        drng = _rng(seed, _S_DOMAIN)
        domain = _powerlaw_ranks(data, n, D, 1.0).astype(np.int64)
        dom_bias = drng.normal(0, _SD_DOMAIN, D)
        for tab in (dom_scale_cat, dom_scale_num):
            shape = (D - 1, tab.shape[1])
            alter = drng.random(shape) < 0.5
            flip = drng.random(shape) < 0.4
            mult = np.where(flip, -1.0, drng.uniform(0.3, 2.0, shape))
            tab[1:] = np.where(alter, mult, 1.0)
        components["domain"] = dom_bias[domain]
        planted["domains"] = {
            "bias": dom_bias.tolist(),
            "shares": _powerlaw_probs(D, 1.0).tolist(),
            "first_order_scale": dom_scale_cat.tolist(),
            "numeric_scale": dom_scale_num.tolist(),
        }

    # ------------------------------------------------------------------- categorical fields
    probs = [_powerlaw_probs(k, cfg.zipf_exponent) for k in cards]
    crng = _rng(seed, _S_CAT)
    salts = crng.integers(0, 2**32, m, dtype=np.uint64)
    cat_idx: list[np.ndarray] = []
    cat_remap: list[np.ndarray] = []
    cat_vocab: list[pl.Series] = []
    for j, k in enumerate(cards):
        r = _powerlaw_ranks(data, n, k, cfg.zipf_exponent)
        if domain is not None and D > 1:
            t = min(k, _TOP_DOMAIN_SHIFT)
            prng = _rng(seed, _S_DOMAIN, 1, j)
            perm = np.stack([np.arange(t)] + [prng.permutation(t) for _ in range(D - 1)])
            top = r < t
            r[top] = perm[domain[top], r[top]]
        miss = data.random(n) < cfg.missing_rate
        r[miss] = k
        cat_idx.append(r.astype(np.int32))
        # Render only the values that occur (cheap for small runs of high-cardinality fields).
        present = np.flatnonzero(np.bincount(r, minlength=k + 1)[:k])
        remap = np.full(k + 1, present.size, dtype=np.int64)
        remap[present] = np.arange(present.size)
        cat_remap.append(remap)
        cat_vocab.append(_hex_vocab(int(salts[j]), present))

    first = np.zeros(n)
    n_first = max(1, int(round(_FRAC_FIRST * m))) if m else 0
    f1 = np.sort(struct.choice(m, n_first, replace=False)) if m else np.array([], dtype=int)
    imp = crng.uniform(0.5, 1.5, len(f1))
    imp_norm = math.sqrt(float(np.sum(imp**2))) if len(f1) else 1.0
    first_w: dict[int, np.ndarray] = {}
    for f, a in zip(f1.tolist(), imp):
        w = _scaled_normal(_rng(seed, _S_CAT, 1, f), cards[f], probs[f], _SD_FIRST * a / imp_norm)
        first_w[f] = w
        contrib = _pad(w)[cat_idx[f]]
        if domain is not None:
            contrib = contrib * dom_scale_cat[domain, f]
        first += contrib
    components["first_order"] = first
    planted["first_order_fields"] = [f"C{f + 1}" for f in f1.tolist()]

    # ------------------------------------------------------------------- numeric fields
    nrng = _rng(seed, _S_NUM)
    numeric: list[np.ndarray] = []
    specs: list[dict[str, float]] = []
    for j in range(q):
        spec = {
            "lognormal": float(nrng.random() < 0.6),
            "mu": float(nrng.uniform(0.5, 4.0)),
            "sigma": float(nrng.uniform(0.7, 1.8)),
            "alpha": float(nrng.uniform(1.1, 2.5)),
            "xm": float(nrng.uniform(1.0, 20.0)),
            "zero": float(nrng.uniform(0.0, 0.3)),
            "curve": float(nrng.uniform(-0.4, 0.4)),
        }
        specs.append(spec)
        shift: np.ndarray | float = 0.0
        if domain is not None and D > 1:
            dshift = np.r_[0.0, _rng(seed, _S_DOMAIN, 2, j).normal(0, 0.3, D - 1)]
            shift = dshift[domain]
        x = _numeric_draw(data, n, spec, shift)
        x[data.random(n) < cfg.missing_rate] = np.nan
        numeric.append(x)

    def phi_fn(j: int) -> Any:
        spec = specs[j]
        ref = _numeric_draw(_rng(seed, _S_NUM, 1, j), _REF_DRAWS, spec, 0.0)
        lx = np.log1p(ref)
        mu_l, sd_l = float(lx.mean()), float(lx.std()) or 1.0

        def raw(x: np.ndarray) -> np.ndarray:
            g = np.clip((np.log1p(x) - mu_l) / sd_l, -4, 4)
            return g + spec["curve"] * g * g

        rr = raw(ref)
        mu_r, sd_r = float(rr.mean()), float(rr.std()) or 1.0
        return lambda x: np.nan_to_num((raw(x) - mu_r) / sd_r, nan=0.0)

    n_num = max(1, int(round(_FRAC_NUMERIC * q))) if q else 0
    n1 = np.sort(struct.choice(q, n_num, replace=False)) if q else np.array([], dtype=int)
    coef = nrng.uniform(0.5, 1.5, len(n1)) * nrng.choice([-1.0, 1.0], len(n1))
    if len(n1):
        coef *= _SD_NUMERIC / math.sqrt(float(np.sum(coef**2)))
    phis = {j: phi_fn(j)(numeric[j]) for j in n1.tolist()}
    num_part = np.zeros(n)
    for j, b in zip(n1.tolist(), coef):
        c = b * phis[j]
        if domain is not None:
            c = c * dom_scale_num[domain, j]
        num_part += c
    components["numeric"] = num_part
    planted["numeric_effect_fields"] = {f"I{j + 1}": float(b) for j, b in zip(n1.tolist(), coef)}

    # ------------------------------------------------------------------- pairwise and triples
    def cross_part(order: int, count: int, top: int, sd: float, tag: int) -> tuple[np.ndarray, list]:
        out = np.zeros(n)
        combos = list(itertools.combinations(range(m), order))
        chosen = [combos[i] for i in sorted(struct.choice(len(combos), count, replace=False).tolist())]
        for ci, fs in enumerate(chosen):
            tops = [min(cards[f], top) for f in fs]
            g = _rng(seed, tag, ci).standard_normal(tops)
            qs = [probs[f][:t] for f, t in zip(fs, tops)]
            w = _pure_interaction(g, qs)
            joint = qs[0]
            for qq in qs[1:]:
                joint = np.multiply.outer(joint, qq)
            var = float(np.sum(joint * w * w))
            w = w * (sd / math.sqrt(count) / math.sqrt(var)) if var > 1e-12 else np.zeros_like(w)
            wp = np.pad(w, [(0, 1)] * order)  # index t = "not a frequent value or missing"
            idx = tuple(np.minimum(cat_idx[f], t) for f, t in zip(fs, tops))
            out += wp[idx]
        return out, [[f"C{f + 1}" for f in fs] for fs in chosen]

    if cfg.num_pairwise:
        components["pairwise"], planted["pairwise"] = cross_part(
            2, cfg.num_pairwise, _TOP_PAIR, _SD_PAIR, _S_PAIR
        )
    if cfg.num_triples:
        components["triples"], planted["triples"] = cross_part(
            3, cfg.num_triples, _TOP_TRIPLE, _SD_TRIPLE, _S_TRIPLE
        )

    # ------------------------------------------------------------------- sequences
    g = _Generated(n=n, click=np.empty(0), p_click=np.empty(0), domain=domain, numeric=numeric,
                   cat_idx=cat_idx, cat_remap=cat_remap, cat_vocab=cat_vocab)  # fmt: skip
    if cfg.sequence:
        srng = _rng(seed, _S_SEQ)
        L = cfg.sequence_length
        n_users = int(np.clip(n // 20, 50, 200_000))
        n_items = int(np.clip(n // 5, 500, 100_000))
        n_cats = int(np.clip(n_items // 20, 2, 50))
        cat_pop = _powerlaw_probs(n_cats, 1.0)
        sizes = 1 + srng.multinomial(n_items - n_cats, cat_pop)
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        item_cat_of = np.repeat(np.arange(n_cats), sizes)
        item_token = srng.permutation(n_items)  # item index -> token id (hides the category layout)
        user_token = srng.permutation(n_users)
        gumbel = np.log(cat_pop)[None, :] - np.log(-np.log(srng.random((n_users, n_cats))))
        interests = np.argsort(-gumbel, axis=1, kind="stable")[:, :_NUM_INTERESTS]
        user_w = srng.normal(0, _SD_USER, n_users)
        item_w = srng.normal(0, _SD_ITEM, n_items)

        def draw_items(users: np.ndarray, p_interest: float) -> tuple[np.ndarray, np.ndarray]:
            k = users.size
            c = interests[users, data.integers(0, interests.shape[1], k)]
            bg = data.random(k) >= p_interest
            c[bg] = _powerlaw_ranks(data, int(bg.sum()), n_cats, 1.0)
            sz = sizes[c]
            rank = np.minimum(np.floor(np.exp(data.random(k) * np.log(sz + 1.0))) - 1, sz - 1)
            return starts[c] + rank.astype(np.int64), c

        user = _powerlaw_ranks(data, n, n_users, 0.9)
        item, item_c = draw_items(user, _P_TARGET_INTEREST)
        lengths = np.minimum(np.floor((L + 1) * data.random(n) ** 1.5), L).astype(np.int64)
        offsets = np.r_[0, np.cumsum(lengths)]
        row_of = np.repeat(np.arange(n), lengths)
        h_items, h_cats = draw_items(user[row_of], _P_HIST_INTEREST)
        k_match = np.bincount(row_of, weights=(h_cats == item_c[row_of]), minlength=n)
        components["sequence"] = _SEQ_GAMMA * np.log1p(k_match) / math.log1p(L / 4)
        components["user_item"] = user_w[user] + item_w[item]
        g.user, g.item, g.item_cat = user, item, item_c
        g.hist_items, g.hist_cats, g.hist_offsets = h_items, h_cats, offsets
        g.user_vocab = _prefixed_vocab("u", user_token)
        g.item_vocab = _prefixed_vocab("i", item_token)
        g.cat_token_vocab = _prefixed_vocab("cat", np.arange(n_cats))
        planted["sequence"] = {
            "num_users": n_users,
            "num_items": n_items,
            "num_categories": n_cats,
            "interests_per_user": _NUM_INTERESTS,
            "gamma": _SEQ_GAMMA,
            "mean_length": float(lengths.mean()),
        }

    # ------------------------------------------------------------------- click
    for part in components.values():
        logit += part
    logit *= scale
    bias = _calibrate(logit, cfg.base_ctr)
    p_click = metrics.sigmoid(bias + logit)
    lrng = _rng(seed, _S_LABEL)
    g.click = (lrng.random(n) < p_click).astype(np.int8)
    g.p_click = p_click
    planted["bias"] = bias
    planted["component_sd"] = {k: float(scale * v.std()) for k, v in components.items()}
    planted["logit_sd"] = float(logit.std())

    # ------------------------------------------------------------------- conversion
    if cfg.funnel:
        vrng = _rng(seed, _S_CVR)
        z = np.zeros(n)
        rho = _CVR_RHO
        for f, a in zip(f1.tolist(), imp):
            sd_f = _SD_CVR_FIRST * a / imp_norm
            indep = _scaled_normal(_rng(seed, _S_CVR, 1, f), cards[f], probs[f], sd_f)
            w = rho * first_w[f] * (sd_f / (_SD_FIRST * a / imp_norm)) + math.sqrt(1 - rho**2) * indep
            z += _pad(w)[cat_idx[f]]
        if len(n1):
            indep_c = vrng.normal(0, 1, len(n1))
            c2 = rho * coef / _SD_NUMERIC + math.sqrt(1 - rho**2) * indep_c / math.sqrt(len(n1))
            c2 *= _SD_CVR_NUMERIC / math.sqrt(float(np.sum(c2**2)))
            for j, b in zip(n1.tolist(), c2):
                z += b * phis[j]
        if domain is not None:
            z += vrng.normal(0, _SD_CVR_DOMAIN, D)[domain]
        z *= scale
        bias_cvr = _calibrate(z, cfg.base_cvr, weights=p_click)
        p_cvr = metrics.sigmoid(bias_cvr + z)
        g.conversion = (g.click.astype(bool) & (lrng.random(n) < p_cvr)).astype(np.int8)
        g.p_cvr = p_cvr
        planted["conversion_bias"] = bias_cvr
        planted["conversion_logit_sd"] = float(z.std())
    g.planted = planted
    return g


# ======================================================================================= writing
def _frame(g: _Generated, cfg: SynthConfig, a: int, b: int) -> pl.DataFrame:
    """Rows ``[a, b)`` rendered as raw columns."""
    cols: dict[str, pl.Series] = {"click": pl.Series("click", g.click[a:b])}
    if g.conversion is not None:
        cols["conversion"] = pl.Series("conversion", g.conversion[a:b])
    if g.domain is not None:
        cols["domain"] = pl.Series("domain", g.domain[a:b])
    for j, x in enumerate(g.numeric):
        name = f"I{j + 1}"
        cols[name] = pl.Series(name, x[a:b], nan_to_null=True).cast(pl.Int64)
    for j, idx in enumerate(g.cat_idx):
        cols[f"C{j + 1}"] = g.cat_vocab[j].gather(g.cat_remap[j][idx[a:b]]).alias(f"C{j + 1}")
    if g.hist_offsets is not None:
        assert g.user_vocab is not None and g.item_vocab is not None and g.cat_token_vocab is not None
        cols["user_id"] = g.user_vocab.gather(g.user[a:b]).alias("user_id")  # type: ignore[index]
        cols["item_id"] = g.item_vocab.gather(g.item[a:b]).alias("item_id")  # type: ignore[index]
        cols["item_cat"] = g.cat_token_vocab.gather(g.item_cat[a:b]).alias("item_cat")  # type: ignore[index]
        off = g.hist_offsets[a : b + 1]
        empty = pl.Series(np.diff(off) == 0)
        for name, vocab, flat in (
            ("hist_items", g.item_vocab, g.hist_items),
            ("hist_cats", g.cat_token_vocab, g.hist_cats),
        ):
            tokens = vocab.gather(flat[off[0] : off[-1]]).to_arrow()  # type: ignore[index]
            lists = pa.LargeListArray.from_arrays(pa.array(off - off[0], pa.int64()), tokens)
            joined = pl.Series(name, lists).list.join("^")
            cols[name] = pl.select(pl.when(empty).then(None).otherwise(joined).alias(name)).to_series()
    return pl.DataFrame(list(cols.values()))


def _write_split(
    g: _Generated, cfg: SynthConfig, a: int, b: int, path: Path, bar: Any | None
) -> None:
    if cfg.format == "parquet":
        writer: pq.ParquetWriter | None = None
        try:
            for s in range(a, b, _CHUNK_ROWS):
                table = _frame(g, cfg, s, min(b, s + _CHUNK_ROWS)).to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema, compression="zstd")
                writer.write_table(table, row_group_size=_CHUNK_ROWS)
                if bar is not None:
                    bar.update(min(b, s + _CHUNK_ROWS) - s)
        finally:
            if writer is not None:
                writer.close()
        return
    sep = "," if cfg.format == "csv" else "\t"
    with open(path, "wb") as fh:
        fh_b: BinaryIO = fh
        for s in range(a, b, _CHUNK_ROWS):
            df = _frame(g, cfg, s, min(b, s + _CHUNK_ROWS))
            df.write_csv(fh_b, separator=sep, include_header=cfg.header and s == a)
            if bar is not None:
                bar.update(min(b, s + _CHUNK_ROWS) - s)


def _schema_dict(cfg: SynthConfig) -> dict[str, Any]:
    feats: list[dict[str, Any]] = []
    if cfg.domains:
        feats.append({"name": "domain", "kind": "categorical"})
    feats += [{"name": f"I{j + 1}", "kind": "numeric", "normalizer": "log"} for j in range(cfg.num_numeric)]
    feats += [{"name": f"C{j + 1}", "kind": "categorical"} for j in range(cfg.num_categorical)]
    if cfg.sequence:
        L = cfg.sequence_length
        feats += [
            {"name": "user_id", "kind": "categorical"},
            {"name": "item_id", "kind": "categorical"},
            {"name": "item_cat", "kind": "categorical"},
            {"name": "hist_items", "kind": "sequence", "delimiter": "^", "max_len": L,
             "share_vocab_with": "item_id"},
            {"name": "hist_cats", "kind": "sequence", "delimiter": "^", "max_len": L,
             "share_vocab_with": "item_cat"},
        ]  # fmt: skip
    out: dict[str, Any] = {"features": feats, "tasks": [{"name": "click"}]}
    if cfg.funnel:
        out["tasks"].append({"name": "conversion"})
    if cfg.sequence:
        out["group"] = "user_id"
    if cfg.domains:
        out["domain"] = "domain"
    return out


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python ones."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _task_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "auc": metrics.auc(y, p),
        "logloss": metrics.logloss(y, p),
        "ctr": float(y.mean()) if y.size else float("nan"),
        "mean_p": float(p.mean()) if p.size else float("nan"),
    }


def _bayes(g: _Generated, a: int, b: int) -> dict[str, Any]:
    """Bayes-optimal metrics of rows ``[a, b)``."""

    def block(sel: slice | np.ndarray) -> dict[str, Any]:
        y, p = g.click[sel], g.p_click[sel]
        out: dict[str, Any] = {"rows": int(y.size), "click": _task_metrics(y, p)}
        if g.conversion is not None and g.p_cvr is not None:
            conv, pcvr = g.conversion[sel], g.p_cvr[sel]
            out["conversion"] = _task_metrics(conv, p * pcvr)
            clicked = y == 1
            out["cvr_on_clicks"] = _task_metrics(conv[clicked], pcvr[clicked])
        return out

    res = block(slice(a, b))
    if g.user is not None:
        res["click_gauc"] = metrics.gauc(g.click[a:b], g.p_click[a:b], g.user[a:b])
    if g.domain is not None:
        dom = g.domain[a:b]
        res["domains"] = {
            str(d): block(np.flatnonzero(dom == d) + a) for d in np.unique(dom).tolist()
        }
    return res


def synthesize(
    out_dir: str | Path,
    config: SynthConfig = SynthConfig(),
    *,
    overwrite: bool = False,
    progress: bool | None = None,
) -> SynthResult:
    """Generate a dataset with a planted model into ``out_dir`` (see the module docstring).

    The files are written into a temporary directory next to ``out_dir`` which is renamed into
    place at the end, so an interrupted run never leaves a complete-looking dataset. An existing
    non-empty ``out_dir`` is an error unless ``overwrite``. ``progress`` shows a bar while writing
    (default: for 1M rows and more, on a terminal).
    """
    cfg = config
    out = Path(out_dir)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        g = _generate(cfg)
        n_train, n_valid, n_test = cfg.split_sizes
        bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid),
                  "test": (n_train + n_valid, cfg.rows)}  # fmt: skip

        schema_dict = _schema_dict(cfg)
        FeatureSchema.from_dict(schema_dict)  # the generator must never emit an invalid schema
        (tmp / "schema.yaml").write_text(
            "# Written by ctrkit.data.synthetic; the planted model is described in truth.json.\n"
            + yaml.safe_dump(schema_dict, sort_keys=False)
        )

        show = progress if progress is not None else (cfg.rows >= 1_000_000 and sys.stderr.isatty())
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=cfg.rows, unit="row", unit_scale=True, desc="synthesize")
        try:
            for split, (a, b) in bounds.items():
                _write_split(g, cfg, a, b, tmp / f"{split}.{cfg.extension}", bar)
                truth_cols = {"p_click": g.p_click[a:b]}
                if g.p_cvr is not None:
                    truth_cols["p_cvr"] = g.p_cvr[a:b]
                    truth_cols["p_conversion"] = g.p_click[a:b] * g.p_cvr[a:b]
                pl.DataFrame(truth_cols).write_parquet(tmp / f"{split}_truth.parquet")
        finally:
            if bar is not None:
                bar.close()

        truth = _clean(
            {
                "generator_version": _GENERATOR_VERSION,
                "config": cfg.to_dict(),
                "rows": {s: b - a for s, (a, b) in bounds.items()},
                "planted": g.planted,
                "bayes": {s: _bayes(g, *bounds[s]) for s in ("valid", "test")},
            }
        )
        (tmp / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")

        if out.exists():
            if overwrite and out.is_dir() and any(out.iterdir()):
                trash = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                out.rename(trash)
                tmp.rename(out)
                shutil.rmtree(trash, ignore_errors=True)
            elif out.is_dir():
                out.rmdir()
                tmp.rename(out)
            else:
                out.unlink()
                tmp.rename(out)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    return SynthResult(
        out_dir=out,
        paths={s: out / f"{s}.{cfg.extension}" for s in bounds},
        schema_path=out / "schema.yaml",
        truth_path=out / "truth.json",
        truth_paths={s: out / f"{s}_truth.parquet" for s in bounds},
        truth=truth,
        rows=dict(truth["rows"]),
    )


"""The synthetic generator: files, schema, determinism, and that truth.json tells the truth."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ctrkit import metrics
from ctrkit.data import synthetic
from ctrkit.data.synthetic import SynthConfig, load_truth, synthesize
from ctrkit.errors import ConfigError
from ctrkit.schema import FeatureSchema, SequenceFeature

SPLITS = ("train", "valid", "test")
# Small but with the Criteo-shaped field layout (cardinalities up to 100k).
SMALL = SynthConfig(rows=6_000)


def read(path: Path, cfg: SynthConfig) -> pl.DataFrame:
    """A data file as all-string columns (nulls for empty cells), whatever the format."""
    if cfg.format == "parquet":
        df = pl.read_parquet(path)
        return df.with_columns(pl.all().cast(pl.String))
    sep = "," if cfg.format == "csv" else "\t"
    return pl.read_csv(path, separator=sep, has_header=cfg.header, infer_schema=False)


def read_all(res: synthetic.SynthResult, cfg: SynthConfig) -> pl.DataFrame:
    return pl.concat([read(res.paths[s], cfg) for s in SPLITS])


def p_true(res: synthetic.SynthResult, split: str, col: str = "p_click") -> np.ndarray:
    return pl.read_parquet(res.truth_paths[split])[col].to_numpy()


@pytest.fixture(scope="module")
def default_small(tmp_path_factory: pytest.TempPathFactory) -> synthetic.SynthResult:
    return synthesize(tmp_path_factory.mktemp("syn") / "d", SMALL)


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> tuple[synthetic.SynthResult, SynthConfig]:
    cfg = SynthConfig(rows=8_000, sequence=True, sequence_length=30, funnel=True, domains=3, seed=7)
    return synthesize(tmp_path_factory.mktemp("syn") / "all", cfg), cfg


# --------------------------------------------------------------------------- files and schema
def test_files_rows_and_schema(default_small: synthetic.SynthResult) -> None:
    res = default_small
    for s in SPLITS:
        assert res.paths[s].is_file() and res.paths[s].name == f"{s}.tsv"
        assert res.truth_paths[s].is_file()
    assert res.rows == {"train": 4_800, "valid": 600, "test": 600}
    schema = FeatureSchema.from_yaml(res.schema_path)
    assert [f.name for f in schema.numeric] == [f"I{i}" for i in range(1, 14)]
    assert all(f.normalizer == "log" for f in schema.numeric)
    assert [f.name for f in schema.categorical] == [f"C{i}" for i in range(1, 27)]
    assert schema.task_names == ["click"] and schema.group is None and schema.domain is None
    for s in SPLITS:
        df = read(res.paths[s], SMALL)
        assert df.height == res.rows[s]
        assert set(df.columns) == set(schema.source_columns)
        assert pl.read_parquet(res.truth_paths[s]).height == res.rows[s]
        # The true probability is never a column of the data.
        assert not any(c.startswith("p_") for c in df.columns)


def test_raw_values_look_like_raw_logs(default_small: synthetic.SynthResult) -> None:
    df = read(default_small.paths["train"], SMALL)
    # Numeric: non-negative integer counts with a heavy tail.
    for c in [f"I{i}" for i in range(1, 14)]:
        x = df[c].drop_nulls().cast(pl.Int64).to_numpy()
        assert x.min() >= 0
    tail = [df[c].drop_nulls().cast(pl.Int64).to_numpy() for c in ("I1", "I2", "I3")]
    assert any(np.percentile(t, 99.5) > 10 * max(np.median(t), 1) for t in tail)
    # Categorical: 8-character hex-like tokens starting with a letter.
    tokens = df["C3"].drop_nulls()
    assert tokens.str.contains(r"^[a-p][0-9a-f]{7}$").all()
    # Zipf-shaped: the most frequent value of a 100k-cardinality field is frequent, yet the field
    # also has a long tail of values seen once.
    counts = tokens.value_counts()["count"].to_numpy()
    assert counts.max() > 0.05 * tokens.len() and (counts == 1).sum() > 100
    # Cardinalities follow the config (C9 of Criteo has 3 values; C20 has 4).
    cards = SMALL.field_cardinalities
    assert cards[8] == 3 and df["C9"].drop_nulls().n_unique() == 3
    assert max(cards) == 100_000 and min(cards) == 3


def test_missing_cells(default_small: synthetic.SynthResult) -> None:
    df = read_all(default_small, SMALL)
    for group in ([f"I{i}" for i in range(1, 14)], [f"C{i}" for i in range(1, 27)]):
        rate = df.select(group).null_count().to_numpy().sum() / (df.height * len(group))
        assert 0.04 < rate < 0.06, rate
    assert df["click"].null_count() == 0
    # Empty cells in the raw text, not a placeholder string.
    line = default_small.paths["train"].read_text().splitlines()[1:200]
    assert any("\t\t" in x for x in line)


def test_truth_json_is_bayes_metrics_of_the_hidden_probabilities(
    default_small: synthetic.SynthResult,
) -> None:
    res = default_small
    truth = load_truth(res.out_dir)
    assert truth == res.truth
    assert truth["config"]["rows"] == SMALL.rows and truth["config"]["seed"] == SMALL.seed
    for split in ("valid", "test"):
        y = read(res.paths[split], SMALL)["click"].cast(pl.Int64).to_numpy()
        p = p_true(res, split)
        got = truth["bayes"][split]["click"]
        assert got["auc"] == pytest.approx(metrics.auc(y, p), abs=1e-12)
        assert got["logloss"] == pytest.approx(metrics.logloss(y, p), abs=1e-12)
        assert got["ctr"] == pytest.approx(y.mean())
        assert 0.6 < got["auc"] < 0.95
        # The Bayes logloss beats the best constant (the label entropy) by a clear margin.
        ctr = y.mean()
        assert got["logloss"] < -(ctr * np.log(ctr) + (1 - ctr) * np.log(1 - ctr)) - 0.03


def test_default_config_bayes_auc_in_range(tmp_path: Path) -> None:
    res = synthesize(tmp_path / "d", SynthConfig(rows=30_000, seed=11))
    for split in ("valid", "test"):
        assert 0.6 < res.truth["bayes"][split]["click"]["auc"] < 0.95
    # The planted components all carry signal.
    sd = res.truth["planted"]["component_sd"]
    assert set(sd) == {"first_order", "numeric", "pairwise", "triples"}
    assert all(v > 0.1 for v in sd.values())


def test_labels_are_draws_from_the_true_probability(tmp_path: Path) -> None:
    cfg = SynthConfig(rows=40_000, base_ctr=0.1, num_categorical=6, num_numeric=3, num_pairwise=3,
                      num_triples=1, seed=3)  # fmt: skip
    res = synthesize(tmp_path / "d", cfg)
    y = read_all(res, cfg)["click"].cast(pl.Int64).to_numpy()
    p = np.concatenate([p_true(res, s) for s in SPLITS])
    assert p.mean() == pytest.approx(0.1, abs=1e-6)  # bias calibrated exactly on the rows
    assert y.mean() == pytest.approx(0.1, abs=0.006)
    # Calibrated per probability decile, not only on average.
    edges = np.quantile(p, np.linspace(0, 1, 11))
    for lo, hi in itertools.pairwise(edges):
        sel = (p >= lo) & (p < hi)
        assert abs(y[sel].mean() - p[sel].mean()) < 0.025


def test_signal_scale_zero_means_no_signal(tmp_path: Path) -> None:
    res = synthesize(tmp_path / "d", SynthConfig(rows=3_000, signal_scale=0.0))
    p = p_true(res, "test")
    assert np.allclose(p, 0.25)


# --------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("fmt", ["tsv", "parquet"])
def test_same_config_same_bytes(tmp_path: Path, fmt: str) -> None:
    cfg = SynthConfig(rows=3_000, format=fmt, sequence=True, funnel=True, domains=2)  # type: ignore[arg-type]
    a = synthesize(tmp_path / "a", cfg)
    b = synthesize(tmp_path / "b", cfg)
    names = sorted(p.name for p in a.out_dir.iterdir())
    assert names == sorted(p.name for p in b.out_dir.iterdir())
    assert len(names) == 8
    for name in names:
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes(), name
    c = synthesize(tmp_path / "c", dataclasses.replace(cfg, seed=cfg.seed + 1))
    assert (a.out_dir / f"test.{fmt}").read_bytes() != (c.out_dir / f"test.{fmt}").read_bytes()


def test_planted_model_does_not_depend_on_rows(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", SynthConfig(rows=2_000, num_categorical=8, num_pairwise=4))
    b = synthesize(tmp_path / "b", SynthConfig(rows=4_000, num_categorical=8, num_pairwise=4))
    for key in ("first_order_fields", "numeric_effect_fields", "pairwise", "triples"):
        assert a.truth["planted"][key] == b.truth["planted"][key]


# --------------------------------------------------------------------------- formats
def test_formats_hold_the_same_data(tmp_path: Path) -> None:
    frames = {}
    for fmt in ("tsv", "csv", "parquet"):
        cfg = SynthConfig(rows=2_000, format=fmt, sequence=True, funnel=True)  # type: ignore[arg-type]
        res = synthesize(tmp_path / fmt, cfg)
        assert res.paths["train"].name == f"train.{fmt}"
        frames[fmt] = read_all(res, cfg)
    assert frames["tsv"].equals(frames["csv"])
    assert frames["tsv"].equals(frames["parquet"])
    assert frames["tsv"].null_count().to_numpy().sum() > 0
    # Parquet keeps real types: integer counts and labels, string tokens.
    pq = pl.read_parquet(tmp_path / "parquet" / "test.parquet")
    assert pq["I1"].dtype.is_integer() and pq["click"].dtype.is_integer()
    assert pq["C1"].dtype == pl.String and pq["hist_items"].dtype == pl.String
    # CSV really is comma-separated.
    assert (tmp_path / "csv" / "train.csv").read_text().splitlines()[0].startswith("click,conversion,I1,")


def test_no_header(tmp_path: Path) -> None:
    with_h = synthesize(tmp_path / "h", SynthConfig(rows=2_000, num_numeric=2, num_categorical=3,
                                                    num_pairwise=1, num_triples=0))  # fmt: skip
    cfg = SynthConfig(rows=2_000, num_numeric=2, num_categorical=3, num_pairwise=1, num_triples=0,
                      header=False)  # fmt: skip
    no_h = synthesize(tmp_path / "n", cfg)
    for s in SPLITS:
        lines_h = with_h.paths[s].read_text().splitlines()
        lines_n = no_h.paths[s].read_text().splitlines()
        assert lines_h[0] == "click\tI1\tI2\tC1\tC2\tC3"
        assert lines_n == lines_h[1:]
        assert len(lines_n) == no_h.rows[s]
        df = read(no_h.paths[s], cfg)
        assert df.height == no_h.rows[s] and df.width == 6
    assert FeatureSchema.from_yaml(no_h.schema_path).source_columns == [
        "I1", "I2", "C1", "C2", "C3", "click"
    ]  # fmt: skip


# --------------------------------------------------------------------------- options
def test_sequence_option(everything: tuple[synthetic.SynthResult, SynthConfig]) -> None:
    res, cfg = everything
    schema = FeatureSchema.from_yaml(res.schema_path)
    hist = schema.feature("hist_items")
    assert isinstance(hist, SequenceFeature)
    assert hist.share_vocab_with == "item_id" and hist.max_len == 30 and hist.delimiter == "^"
    assert schema.vocab_owner("hist_cats") == "item_cat"
    assert schema.group == "user_id"
    df = read_all(res, cfg)
    items = df["hist_items"].fill_null("").str.split("^").list.eval(pl.element().filter(pl.element() != ""))
    cats = df["hist_cats"].fill_null("").str.split("^").list.eval(pl.element().filter(pl.element() != ""))
    lens = items.list.len().to_numpy()
    assert lens.min() == 0 and lens.max() <= 30 and lens.max() >= 25
    assert (cats.list.len().to_numpy() == lens).all()
    # Empty histories are empty cells, not empty strings.
    assert df.filter(pl.col("hist_items") == "").height == 0
    # History items and the target item share one token space; categories are the target's.
    target_items = set(df["item_id"].to_list())
    hist_items = set(items.explode().drop_nulls().to_list())
    assert len(target_items & hist_items) > 0.5 * len(target_items)
    item_to_cat = dict(zip(df["item_id"].to_list(), df["item_cat"].to_list()))
    pairs = pl.DataFrame({"i": items.explode(), "c": cats.explode()}).drop_nulls()
    sample = pairs.head(2_000)
    known = [(i, c) for i, c in sample.iter_rows() if i in item_to_cat]
    assert known and all(item_to_cat[i] == c for i, c in known)
    # The planted target-attention term: more history items in the target's category, more clicks.
    k = np.array([sum(c == t for c in cs) for cs, t in zip(cats.to_list(), df["item_cat"].to_list())])
    y = df["click"].cast(pl.Int64).to_numpy()
    assert y[k >= 3].mean() > y[k == 0].mean() + 0.1
    assert res.truth["planted"]["component_sd"]["sequence"] > 0.3
    assert 0.5 < res.truth["bayes"]["test"]["click_gauc"] < 1.0


def test_long_sequences(tmp_path: Path) -> None:
    cfg = SynthConfig(rows=1_000, num_numeric=1, num_categorical=2, num_pairwise=1, num_triples=0,
                      sequence=True, sequence_length=1_000)  # fmt: skip
    res = synthesize(tmp_path / "d", cfg)
    lens = read_all(res, cfg)["hist_items"].str.split("^").list.len().fill_null(0).to_numpy()
    assert lens.max() <= 1_000 and lens.max() > 900 and lens.mean() > 200


def test_funnel_option(everything: tuple[synthetic.SynthResult, SynthConfig]) -> None:
    res, cfg = everything
    schema = FeatureSchema.from_yaml(res.schema_path)
    assert schema.task_names == ["click", "conversion"]
    df = read_all(res, cfg)
    click = df["click"].cast(pl.Int64).to_numpy()
    conv = df["conversion"].cast(pl.Int64).to_numpy()
    assert conv.sum() > 0 and (conv <= click).all()
    assert conv[click == 1].mean() == pytest.approx(cfg.base_cvr, abs=0.03)
    test = read(res.paths["test"], cfg)
    t = pl.read_parquet(res.truth_paths["test"])
    assert np.allclose(t["p_conversion"].to_numpy(), t["p_click"].to_numpy() * t["p_cvr"].to_numpy())
    b = res.truth["bayes"]["test"]
    y_conv = test["conversion"].cast(pl.Int64).to_numpy()
    assert b["conversion"]["auc"] == pytest.approx(metrics.auc(y_conv, t["p_conversion"].to_numpy()))
    clicked = test["click"].cast(pl.Int64).to_numpy() == 1
    assert b["cvr_on_clicks"]["auc"] == pytest.approx(
        metrics.auc(y_conv[clicked], t["p_cvr"].to_numpy()[clicked])
    )
    assert 0.55 < b["cvr_on_clicks"]["auc"] < b["conversion"]["auc"] < 0.97


def test_domains_option(everything: tuple[synthetic.SynthResult, SynthConfig]) -> None:
    res, cfg = everything
    schema = FeatureSchema.from_yaml(res.schema_path)
    assert schema.domain == "domain"
    df = read_all(res, cfg)
    assert sorted(df["domain"].unique().to_list()) == ["0", "1", "2"]
    test = read(res.paths["test"], cfg)
    p = p_true(res, "test")
    dom = test["domain"].to_numpy()
    y = test["click"].cast(pl.Int64).to_numpy()
    per = res.truth["bayes"]["test"]["domains"]
    assert sorted(per) == ["0", "1", "2"]
    for d, m in per.items():
        sel = dom == d
        assert m["rows"] == sel.sum()
        assert m["click"]["auc"] == pytest.approx(metrics.auc(y[sel], p[sel]))
    # Domains differ: the planted domain biases are not all equal, and CTRs differ between domains.
    ctrs = [df.filter(pl.col("domain") == d)["click"].cast(pl.Int64).mean() for d in ("0", "1", "2")]
    assert max(ctrs) - min(ctrs) > 0.02  # type: ignore[operator]
    scales = np.array(res.truth["planted"]["domains"]["first_order_scale"])
    assert (scales[0] == 1).all() and (scales[1:] != 1).any()


# --------------------------------------------------------------------------- the planted crosses
def test_pure_interaction_has_no_main_effects() -> None:
    rng = np.random.default_rng(0)
    qs = [rng.random(5), rng.random(4), rng.random(3)]
    w = synthetic._pure_interaction(rng.standard_normal((5, 4, 3)), qs)
    for ax in range(3):
        assert np.allclose(synthetic._weighted_mean(w, qs[ax] / qs[ax].sum(), ax), 0)
    w2 = synthetic._pure_interaction(rng.standard_normal((5, 4)), qs[:2])
    assert np.allclose(w2 @ (qs[1] / qs[1].sum()), 0) and np.allclose((qs[0] / qs[0].sum()) @ w2, 0)
    assert np.abs(w2).max() > 0.1


def test_powerlaw_sampler_matches_its_probabilities() -> None:
    rng = np.random.default_rng(1)
    r = synthetic._powerlaw_ranks(rng, 200_000, 50, 1.1)
    p = synthetic._powerlaw_probs(50, 1.1)
    freq = np.bincount(r, minlength=50) / r.size
    assert np.abs(freq - p).max() < 0.004 and p.sum() == pytest.approx(1.0)
    assert synthetic._powerlaw_ranks(rng, 1_000, 1, 1.1).max() == 0


# --------------------------------------------------------------------------- writing safely
def test_existing_dir_and_overwrite(tmp_path: Path) -> None:
    cfg = SynthConfig(rows=1_000, num_numeric=1, num_categorical=2, num_pairwise=1, num_triples=0)
    out = tmp_path / "d"
    out.mkdir()  # an empty directory is fine
    synthesize(out, cfg)
    with pytest.raises(FileExistsError):
        synthesize(out, cfg)
    res = synthesize(out, SynthConfig(rows=2_000, num_numeric=1, num_categorical=2, num_pairwise=1,
                                      num_triples=0), overwrite=True)  # fmt: skip
    assert load_truth(out)["rows"]["train"] == 1_600 == res.rows["train"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary directories left


def test_failed_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(synthetic, "_write_split", boom)
    with pytest.raises(RuntimeError, match="killed"):
        synthesize(tmp_path / "d", SynthConfig(rows=1_000))
    assert list(tmp_path.iterdir()) == []


def test_load_truth_of_a_non_dataset(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="truth.json"):
        load_truth(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"rows": 5}, "rows"),
        ({"num_categorical": 3, "num_pairwise": 4}, "num_pairwise"),
        ({"num_categorical": 3, "num_pairwise": 1, "num_triples": 2}, "num_triples"),
        ({"cardinalities": (10, 20)}, "cardinalities"),
        ({"base_ctr": 1.0}, "base_ctr"),
        ({"missing_rate": -0.1}, "missing_rate"),
        ({"format": "json"}, "format"),
        ({"sequence_length": 0}, "sequence_length"),
        ({"valid_fraction": 0.0}, "valid_fraction"),
    ],
)
def test_bad_config(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        SynthConfig(**kwargs)  # type: ignore[arg-type]


def test_truth_json_is_plain_json(default_small: synthetic.SynthResult) -> None:
    text = default_small.truth_path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert json.loads(text)["config"]["cardinalities"] == list(SMALL.field_cardinalities)

"""The fast (Polars-free) encoding of dict records gives exactly the general path's batches and
probabilities; anything unusual falls back to the general path (same errors)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ctrkit.batch import Batch
from ctrkit.data.encoders import Encoders
from ctrkit.schema import FeatureSchema
from ctrkit.serve import InputError, Predictor
from conftest import json_records


def _recs(data, n: int | None = None) -> list[dict]:
    """Test rows as JSON clients send them: numbers as numbers, sequences as lists."""
    df = pl.read_csv(data / "test.tsv", separator="\t", infer_schema=False)
    return json_records(df.head(n) if n else df)


def _tricky(recs: list[dict]) -> list[dict]:
    """Unseen values, missing values and fields, ints/floats/bools as categories, sequences as
    strings, lists with numbers/None, over-long sequences, negative and zero numerics."""
    out = []
    for i, r in enumerate(recs):
        r = dict(r)
        m = i % 12
        if m == 0:
            r["C1"] = "never-seen-value"
            r["item_id"] = "i-unseen"
        elif m == 1:
            r.pop("C2")
            r["I1"] = None
        elif m == 2:
            r["hist_items"] = "^".join(r["hist_items"])
            r["hist_cats"] = "^^" + "^".join(r["hist_cats"]) + "^"
        elif m == 3:
            r["hist_items"] = r["hist_items"] * 4 + ["i1", None, "i-unseen"]  # truncated to max_len
            r["hist_cats"] = tuple(r["hist_cats"])
        elif m == 4:
            r["I2"] = int(r["I2"] or 0)
            r["I3"] = -2.5
            r["C3"] = 12
        elif m == 5:
            r["C4"] = 3.0
            r["C5"] = 2.5
            r["user_id"] = True
        elif m == 6:
            r["hist_items"] = []
            r["hist_cats"] = None
        elif m == 7:
            r.pop("hist_items")
            r["I1"] = 0
        elif m == 8:
            r["hist_items"] = ["i1^i2", 7]  # an item with the delimiter splits, like a string
            r["extra"] = "ignored"
        elif m == 9:
            r["C1"] = None
            r["click"] = "1"
        out.append(r)
    return out


def _same_batch(a: Batch, b: Batch) -> None:
    assert a.ids.dtype == b.ids.dtype and a.dense.dtype == b.dense.dtype
    assert np.array_equal(a.ids.numpy(), b.ids.numpy())
    assert np.array_equal(a.dense.numpy(), b.dense.numpy())
    assert set(a.sequences) == set(b.sequences)
    for k in a.sequences:
        assert np.array_equal(a.sequences[k].values.numpy(), b.sequences[k].values.numpy()), k
        assert np.array_equal(a.sequences[k].lengths.numpy(), b.sequences[k].lengths.numpy()), k
    assert (a.domain is None) == (b.domain is None)
    if a.domain is not None:
        assert np.array_equal(a.domain.numpy(), b.domain.numpy())
    assert dict(a.labels) == dict(b.labels) == {} and a.group is None and b.group is None


def _both(p: Predictor, recs) -> tuple[Batch, Batch]:
    p.fast_encoding = True
    fast = p.encode(recs)
    p.fast_encoding = False
    try:
        slow = p.encode(recs)
    finally:
        p.fast_encoding = True
    return fast, slow


@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnx"])
def test_fast_path_equals_general_path(deepfm_bundle, serve_data, backend):
    p = Predictor.load(deepfm_bundle, backend=backend)
    assert p._fast is not None
    recs = _tricky(_recs(serve_data, 600))
    for chunk in (recs[:1], recs[1:2], recs[:12], recs[12:75], recs):  # small and vectorised paths
        fast, slow = _both(p, chunk)
        _same_batch(fast, slow)
        p.fast_encoding = True
        got = p.predict(chunk)["click"]
        p.fast_encoding = False
        ref = p.predict(chunk)["click"]
        p.fast_encoding = True
        assert np.array_equal(got, ref)
    one = p.predict(recs[3])["click"]  # a single dict
    assert np.array_equal(one, p.predict([recs[3]])["click"])


def _frames(data, n: int) -> list[pl.DataFrame]:
    """Tables as clients pass them: raw text (as read from the training files), typed columns
    (ints, floats with NaN and nulls, bools and floats as categories), lists as sequences."""
    raw = pl.read_csv(data / "test.tsv", separator="\t", infer_schema=False).head(n)
    typed = pl.read_csv(data / "test.tsv", separator="\t").head(n)
    k = pl.int_range(pl.len()) % 7
    odd = typed.with_columns(
        pl.when(k == 0).then(float("nan")).otherwise(pl.col("I1").cast(pl.Float64)).alias("I1"),
        pl.when(k == 1).then(None).otherwise(pl.col("I2")).alias("I2"),
        (k == 2).alias("C3"),  # a Boolean column as a category
        pl.when(k == 3).then(2.5).otherwise(k.cast(pl.Float64)).alias("C4"),  # floats: 2.0 -> "2"
        pl.col("hist_items").str.split("^").alias("hist_items"),
        pl.when(k == 4).then(None).otherwise(pl.col("hist_cats")).alias("hist_cats"),
    ).drop("C5")
    return [raw, typed, odd, raw.head(1), odd.slice(3, 5)]


def test_fast_path_for_tables_equals_general_path(deepfm_bundle, serve_data, monkeypatch):
    from ctrkit.serve import predictor as mod

    p = Predictor.load(deepfm_bundle, backend="eager")
    calls = []
    orig = mod._EncodePlan.encode
    monkeypatch.setattr(mod._EncodePlan, "encode", lambda self, f: calls.append(1) or orig(self, f))
    for frame in _frames(serve_data, 400):
        for table in (frame, frame.to_arrow()):
            fast, slow = _both(p, table)
            _same_batch(fast, slow)
    assert len(calls) == 10  # only the forced general path: every table took the fast lookups
    # Errors in tables are still the general path's, naming the field and row.
    bad = _frames(serve_data, 20)[0].with_columns(pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("abc")).otherwise(pl.col("I2")).alias("I2"))
    with pytest.raises(InputError, match="I2") as ei:
        p.predict(bad)
    assert ei.value.record == 7
    inf = _frames(serve_data, 20)[1].with_columns(pl.lit(float("inf")).alias("I3"))
    fast, slow = _both(p, inf)  # non-finite: falls back to the general path, same batch
    _same_batch(fast, slow)


def test_fast_path_is_taken_and_falls_back(deepfm_bundle, serve_data, monkeypatch):
    p = Predictor.load(deepfm_bundle, backend="eager")
    rec = _recs(serve_data, 1)[0]
    calls = []
    orig = Predictor._frame_from_records
    monkeypatch.setattr(Predictor, "_frame_from_records", lambda self, r: calls.append(1) or orig(self, r))
    p.predict([rec])
    p.predict([rec] * 100)
    assert calls == []
    # Numeric strings, numpy scalars: the general path (same results as before). A str subclass
    # (np.str_) as a category is looked up as the string it is, on the fast path.
    for odd in ({**rec, "I2": "4"}, {**rec, "I1": np.float32(3.0)}, {**rec, "C1": np.str_("x")}):
        fast, slow = _both(p, [odd])
        _same_batch(fast, slow)
    # 2 x (the fast attempt fell back, then the forced general path) + 1 forced general path
    assert len(calls) == 5
    # Errors are the general path's, naming the field and record.
    for bad, field in (({**rec, "I1": float("nan")}, "I1"), ({**rec, "I2": "abc"}, "I2"),
                       ({**rec, "I3": True}, "I3"), ({**rec, "C1": {"a": 1}}, "C1"),
                       ({**rec, "hist_items": 5}, "hist_items"), ({**rec, "C2": float("inf")}, "C2")):
        for n in (1, 100):
            with pytest.raises(InputError, match=field) as ei:
                p.predict([rec] * (n - 1) + [bad])
            assert ei.value.field == field and ei.value.record == n - 1
    p_err = Predictor.load(deepfm_bundle, backend="eager", missing="error", unknown="error")
    with pytest.raises(InputError, match="C3"):
        p_err.predict([rec, {k: v for k, v in rec.items() if k != "C3"}])
    with pytest.raises(InputError, match="bogus"):
        p_err.predict([{**rec, "bogus": 1}])
    assert np.array_equal(p_err.predict([rec])["click"], p.predict([rec])["click"])


def _mixed_predictor(data, *, sequences: bool, hash_c2: bool, hash_item_cat: bool, i3_normalizer: str | None) -> Predictor:
    """A predictor over the serving data's schema with every numeric kind in it: I1 as a
    criteo_log2 bucket, a quantile bucket and a standard-normalized number; I2 min-max; I3 with
    ``i3_normalizer``; optionally C2 / item_cat hashed; sequences kept (hist_items truncated
    post to 3) or dropped. Encoders fitted on train, no model."""
    raw = FeatureSchema.from_yaml(data / "schema.yaml").to_dict()
    feats = []
    for f in raw["features"]:
        f = {k: v for k, v in f.items() if v is not None}
        if f["kind"] == "sequence" and not sequences:
            continue
        if f["name"] == "I1":
            feats += [{"name": "I1", "kind": "numeric", "bucketize": {"method": "criteo_log2"}, "fill_value": -1.5},
                      {"name": "I1q", "column": "I1", "kind": "numeric", "bucketize": {"method": "quantile", "num_buckets": 7}},
                      {"name": "I1s", "column": "I1", "kind": "numeric", "normalizer": "standard", "fill_value": 2.0}]
            continue
        if f["name"] == "I2":
            f = {"name": "I2", "kind": "numeric", "normalizer": "minmax"}
        if f["name"] == "I3":
            f = {"name": "I3", "kind": "numeric", **({"normalizer": i3_normalizer} if i3_normalizer else {})}
        if f["name"] == "C2" and hash_c2:
            f = {**f, "hash_buckets": 50, "fill_value": "NA"}
        if f["name"] == "item_cat" and hash_item_cat:
            f = {**f, "hash_buckets": 7}
        if f["name"] == "hist_items":
            f = {**f, "truncate": "post", "max_len": 3}
        feats.append(f)
    raw["features"] = feats
    raw["group"] = None
    schema = FeatureSchema.from_dict(raw)
    enc = Encoders.fit(schema, pl.scan_csv(data / "train.tsv", separator="\t", infer_schema=False))
    fitted = enc.fitted_schema()
    enc = Encoders(fitted, enc.vocabs, enc.stats, enc.edges, enc.domains)
    p = Predictor(data, {}, fitted, enc, "eager", runner=lambda b: None)
    assert p._fast is not None
    return p


def test_fast_path_bucketized_hashed_and_normalized_fields(serve_data):
    """criteo_log2 and quantile buckets, hashed vocabularies (also shared by a sequence),
    standard / minmax / log / no normalizers: the same ids and dense values as Polars."""
    p = _mixed_predictor(serve_data, sequences=True, hash_c2=True, hash_item_cat=True, i3_normalizer=None)
    recs = _tricky(_recs(serve_data, 300))
    for r in recs[::5]:
        r["I1"] = 1e6 if r["I1"] is None else -r["I1"]
    for chunk in (recs[:1], recs[:10], recs):
        fast, slow = _both(p, chunk)
        _same_batch(fast, slow)
    for frame in _frames(serve_data, 300):
        fast, slow = _both(p, frame)
        _same_batch(fast, slow)


@pytest.mark.parametrize("hashed", [False, True])
def test_single_record_path_equals_general_path(serve_data, monkeypatch, hashed):
    """A schema without sequences or domains: one record goes through ``_encode_one`` (unless a
    field is hashed, when it takes the column path) and gives the general path's ids and floats:
    log2 / quantile buckets, standard / minmax / log / plain numerics, missing, unseen, None,
    ints / floats / bools as categories, non-finite numbers (fallback)."""
    from ctrkit.serve import predictor as mod

    p = _mixed_predictor(serve_data, sequences=False, hash_c2=hashed, hash_item_cat=False, i3_normalizer="log")
    one, cols = [], []
    monkeypatch.setattr(mod._FastEncoder, "_encode_one", lambda self, r, f=mod._FastEncoder._encode_one: one.append(1) or f(self, r))
    monkeypatch.setattr(mod._FastEncoder, "_encode_columns",
                        lambda self, *a, f=mod._FastEncoder._encode_columns: cols.append(1) or f(self, *a))
    recs = _tricky(_recs(serve_data, 120))
    for r in recs[::7]:
        r["I1"] = 1e6 if r["I1"] is None else -r["I1"]
    for r in recs:
        fast, slow = _both(p, [r])
        _same_batch(fast, slow)
    assert len(one) == len(recs)
    assert len(cols) == (len(recs) if hashed else 0)  # a hashed field: the column path
    bad = dict(recs[5], I2=float("inf"))  # non-finite: the general path's error, on both paths
    for fast in (True, False):
        p.fast_encoding = fast
        with pytest.raises(InputError, match="I2"):
            p.encode([bad])
    p.fast_encoding = True

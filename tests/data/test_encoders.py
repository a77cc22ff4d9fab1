"""Encoders: fitted on train only, min_count, hash buckets, shared vocabularies, normalizers,
quantile and criteo_log2 buckets, sequences. Values are checked by hand."""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from ctrkit.batch import FieldLayout
from ctrkit.data import DataSpec, build_store, source_file
from ctrkit.data.encoders import criteo_log2
from ctrkit.data.store import Store
from ctrkit.schema import NUM_RESERVED, OOV_ID, PAD_ID, FeatureSchema


def make_store(tmp_path: Path, features: list[dict[str, Any]], train: str, valid: str | None = None, **extra: Any) -> Store:
    schema = FeatureSchema.from_dict({"features": features, "tasks": [{"name": "click", "column": "y"}], **extra})
    (tmp_path / "train.csv").write_text(train)
    sources = {"train": source_file(tmp_path / "train.csv")}
    if valid is not None:
        (tmp_path / "valid.csv").write_text(valid)
        sources["valid"] = source_file(tmp_path / "valid.csv")
    return build_store(DataSpec(schema, sources), tmp_path / "store", progress=False)


def csv(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


def ids(store: Store, split: str, field: str) -> list[int]:
    j = [f.name for f in store.schema.categorical].index(field)
    return store.arrays(split).ids[:, j].tolist()


def dense(store: Store, split: str, field: str) -> np.ndarray:
    j = [f.name for f in store.schema.numeric].index(field)
    return np.asarray(store.arrays(split).dense[:, j])


# ---------------------------------------------------------------------- categorical
def test_fitted_on_train_only_valid_value_is_oov(tmp_path: Path) -> None:
    st = make_store(
        tmp_path,
        [{"name": "a", "kind": "categorical"}],
        csv("a,y", ["u,1", "u,0", "v,1"]),
        csv("a,y", ["u,1", "w,0", "w,1", "v,0"]),
    )
    vocab = st.encoders.vocabs["a"]
    assert vocab.values == ["u", "v"]  # by train frequency; 'w' (valid only) never enters
    assert ids(st, "train", "a") == [2, 2, 3]
    assert ids(st, "valid", "a") == [2, OOV_ID, OOV_ID, 3]
    assert st.manifest["splits"]["valid"]["oov"]["a"] == 2
    assert st.manifest["splits"]["train"]["oov"]["a"] == 0
    assert st.schema.vocab_size("a") == NUM_RESERVED + 2


def test_ids_ordered_by_frequency_then_value(tmp_path: Path) -> None:
    st = make_store(tmp_path, [{"name": "a", "kind": "categorical"}], csv("a,y", ["c,1", "b,0", "c,1", "a,0", "b,1"]))
    assert st.encoders.vocabs["a"].values == ["b", "c", "a"]  # b,c twice (tie by value), a once
    assert ids(st, "train", "a") == [3, 2, 3, 4, 2]


def test_min_count(tmp_path: Path) -> None:
    rows = ["x,1"] * 3 + ["y,0"] * 2 + ["z,1"]
    st = make_store(tmp_path, [{"name": "a", "kind": "categorical", "min_count": 2}], csv("a,y", rows))
    assert st.encoders.vocabs["a"].values == ["x", "y"]
    assert ids(st, "train", "a") == [2, 2, 2, 3, 3, OOV_ID]  # 'z' seen once < 2
    assert st.manifest["splits"]["train"]["oov"]["a"] == 1
    assert st.schema.vocab_size("a") == 4


def test_missing_categorical_is_its_own_category(tmp_path: Path) -> None:
    st = make_store(tmp_path, [{"name": "a", "kind": "categorical"}], csv("a,y", [",1", "u,0", ",1"]))
    assert st.encoders.vocabs["a"].values == ["", "u"]
    assert ids(st, "train", "a") == [2, 3, 2]


def test_hash_buckets(tmp_path: Path) -> None:
    B = 7
    st = make_store(
        tmp_path,
        [{"name": "a", "kind": "categorical", "hash_buckets": B}],
        csv("a,y", ["apple,1", "pear,0", "fig,1"]),
        csv("a,y", ["kiwi,1", "apple,0"]),
    )
    expect = {v: NUM_RESERVED + zlib.crc32(v.encode()) % B for v in ("apple", "pear", "fig", "kiwi")}
    assert ids(st, "train", "a") == [expect["apple"], expect["pear"], expect["fig"]]
    assert ids(st, "valid", "a") == [expect["kiwi"], expect["apple"]]  # unseen values still hash
    assert st.schema.vocab_size("a") == B + NUM_RESERVED
    assert all(NUM_RESERVED <= i < B + NUM_RESERVED for i in ids(st, "valid", "a"))


def test_shared_vocab_between_sequence_and_categorical(tmp_path: Path) -> None:
    st = make_store(
        tmp_path,
        [
            {"name": "item", "kind": "categorical"},
            {"name": "hist", "kind": "sequence", "delimiter": "|", "share_vocab_with": "item"},
        ],
        csv("item,hist,y", ["a,b|c,1", "b,a,0", "c,,1"]),
    )
    vocab = st.encoders.vocabs
    assert set(vocab) == {"item"}  # one vocabulary, counted over both columns
    assert vocab["item"].values == ["a", "b", "c"] and vocab["item"].counts == [2, 2, 2]
    arr = st.arrays("train")
    seq = arr.seq_values["hist"].tolist()
    item_id = dict(zip(vocab["item"].values, range(2, 5)))
    assert seq == [item_id["b"], item_id["c"], item_id["a"]]
    assert ids(st, "train", "item") == [item_id["a"], item_id["b"], item_id["c"]]
    layout = FieldLayout.from_schema(st.schema)
    assert layout.offset("hist") == layout.offset("item")
    assert st.schema.vocab_size("hist") == st.schema.vocab_size("item") == 5


# ---------------------------------------------------------------------- numeric
X = [1.0, 2.0, 4.0, 9.0]


def numeric_store(tmp_path: Path, normalizer: str, valid: list[float] | None = None) -> Store:
    feats = [{"name": "x", "kind": "numeric", "normalizer": normalizer}]
    v = csv("x,y", [f"{x},1" for x in valid]) if valid else None
    return make_store(tmp_path, feats, csv("x,y", [f"{x},1" for x in X]), v)


def test_normalizer_standard(tmp_path: Path) -> None:
    st = numeric_store(tmp_path, "standard", valid=[100.0])
    mean, std = np.mean(X), np.std(X, ddof=1)
    np.testing.assert_allclose(dense(st, "train", "x"), (np.array(X) - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(dense(st, "valid", "x"), [(100.0 - mean) / std], rtol=1e-6)  # train statistics
    assert dense(st, "train", "x").dtype == np.float32


def test_normalizer_minmax(tmp_path: Path) -> None:
    st = numeric_store(tmp_path, "minmax", valid=[5.0, 17.0])
    np.testing.assert_allclose(dense(st, "train", "x"), [0.0, 0.125, 0.375, 1.0], rtol=1e-6)
    np.testing.assert_allclose(dense(st, "valid", "x"), [0.5, 2.0], rtol=1e-6)  # not clipped


def test_normalizer_log(tmp_path: Path) -> None:
    feats = [{"name": "x", "kind": "numeric", "normalizer": "log"}]
    st = make_store(tmp_path, feats, csv("x,y", ["0,1", "1,1", "-3,0", "1000,1", ",0"]))
    expect = [0.0, math.log1p(1), -math.log1p(3), math.log1p(1000), 0.0]  # missing -> fill 0 -> 0
    np.testing.assert_allclose(dense(st, "train", "x"), expect, rtol=1e-6)


def test_normalizer_none_and_fill_value(tmp_path: Path) -> None:
    feats = [{"name": "x", "kind": "numeric", "fill_value": -7}]
    st = make_store(tmp_path, feats, csv("x,y", ["2.5,1", ",0"]))
    assert dense(st, "train", "x").tolist() == [2.5, -7.0]


def test_quantile_buckets(tmp_path: Path) -> None:
    train = [float(i) for i in range(1, 101)]
    feats = [{"name": "x", "kind": "numeric", "bucketize": {"method": "quantile", "num_buckets": 4}}]
    st = make_store(
        tmp_path, feats, csv("x,y", [f"{x},1" for x in train]), csv("x,y", ["-5,0", "26,1", "50.5,1", "1000,0"])
    )
    edges = st.encoders.edges["x"]
    np.testing.assert_allclose(edges, np.quantile(train, [0.25, 0.5, 0.75]))  # 25.75, 50.5, 75.25
    got = ids(st, "valid", "x")
    # bucket = number of edges <= x, plus the reserved ids
    assert got == [NUM_RESERVED + 0, NUM_RESERVED + 1, NUM_RESERVED + 2, NUM_RESERVED + 3]
    assert st.schema.vocab_size("x") == NUM_RESERVED + len(edges) + 1
    tr = ids(st, "train", "x")
    assert np.bincount(np.array(tr) - NUM_RESERVED).tolist() == [25, 25, 25, 25]


def reference_criteo_log2(x: float) -> int:
    return int(math.floor(math.log(x) ** 2)) if x > 2 else int(x)


def test_criteo_log2_by_hand() -> None:
    values = [0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 10.0, 1382.0, -1.0, -1.5, -2.0]
    got = pl.DataFrame({"x": values}).select(criteo_log2(pl.col("x")))["x"].to_list()
    assert got == [str(reference_criteo_log2(v)) for v in values]
    # by hand: ln(3)^2 = 1.207 -> 1; ln(10)^2 = 5.30 -> 5; ln(1382)^2 = 52.29 -> 52; int(-1.5) = -1
    assert got[5:8] == ["1", "5", "52"] and got[9] == "-1"


def test_criteo_log2_bucketized_field_with_min_count(tmp_path: Path) -> None:
    feats = [{"name": "I1", "kind": "numeric", "bucketize": {"method": "criteo_log2"}, "min_count": 2}]
    # tokens: 1382->52 (x2), 1400->52, 3->1, 10->5 (once), missing->0 (x2)
    rows = ["1382,1", "1400,0", "3,1", "10,1", ",0", ",1", "3,0"]
    st = make_store(tmp_path, feats, csv("I1,y", rows), csv("I1,y", ["1390,1", "11,0", "0,1"]))
    vocab = st.encoders.vocabs["I1"]
    assert dict(zip(vocab.values, vocab.counts)) == {"52": 2, "1": 2, "0": 2}  # '5' seen once: dropped
    tok_id = {v: i + NUM_RESERVED for i, v in enumerate(vocab.values)}
    assert ids(st, "train", "I1") == [tok_id["52"], tok_id["52"], tok_id["1"], OOV_ID, tok_id["0"], tok_id["0"], tok_id["1"]]
    assert ids(st, "valid", "I1") == [tok_id["52"], OOV_ID, tok_id["0"]]  # ln(11)^2 = 5.75 -> 5: rare
    assert st.schema.numeric == [] and [f.name for f in st.schema.categorical] == ["I1"]


# ---------------------------------------------------------------------- sequences
def seq_rows(store: Store, split: str, name: str) -> list[list[int]]:
    arr = store.arrays(split)
    v, o = arr.seq_values[name], arr.seq_offsets[name]
    return [v[o[i] : o[i + 1]].tolist() for i in range(len(arr))]


@pytest.mark.parametrize("truncate", ["pre", "post"])
def test_sequence_delimiter_max_len_truncate(tmp_path: Path, truncate: str) -> None:
    feats = [{"name": "h", "kind": "sequence", "delimiter": ";", "max_len": 3, "truncate": truncate}]
    st = make_store(tmp_path, feats, csv("h,y", ["a;b;c;d;e,1", "a;b,0", ",1", "c;;d,0"]))
    vocab = st.encoders.vocabs["h"]
    tid = {v: i + NUM_RESERVED for i, v in enumerate(vocab.values)}
    rows = seq_rows(st, "train", "h")
    first = ["c", "d", "e"] if truncate == "pre" else ["a", "b", "c"]  # pre keeps the most recent
    assert rows[0] == [tid[t] for t in first]
    assert rows[1] == [tid["a"], tid["b"]]
    assert rows[2] == []  # empty sequence: length 0
    assert rows[3] == [tid["c"], tid["d"]]  # empty tokens dropped
    assert st.arrays("train").seq_offsets["h"].tolist()[:2] == [0, 3]
    assert PAD_ID not in sum(rows, []) and OOV_ID not in sum(rows, [])


def test_sequence_oov_counted(tmp_path: Path) -> None:
    feats = [{"name": "h", "kind": "sequence", "delimiter": "^"}]
    st = make_store(tmp_path, feats, csv("h,y", ["a^b,1", "a,0"]), csv("h,y", ["a^z^q,1"]))
    assert seq_rows(st, "valid", "h") == [[2, OOV_ID, OOV_ID]]
    info = st.manifest["splits"]["valid"]["sequences"]["h"]
    assert info == {"mean_length": 3.0, "oov": 2, "items": 3}


# ---------------------------------------------------------------------- labels
def test_label_spellings(tmp_path: Path) -> None:
    st = make_store(tmp_path, [{"name": "a", "kind": "categorical"}], csv("a,y", ["u,1", "u,0", "u,1.0", "u,-1", "u,true", "u, 0 "]))
    assert st.arrays("train").labels[:, 0].tolist() == [1, 0, 1, 0, 1, 0]
    assert st.manifest["splits"]["train"]["positives"] == {"click": 3}

"""The fast preprocessing path (typed parse, structure proven from byte counts, lookup tables,
train ids from the counting groups) gives exactly what the string path gives, and falls back to
it, with the same errors, whenever its preconditions do not hold."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ctrkit.data import DataSpec, build_store, source_file
from ctrkit.data.encoders import Encoders
from ctrkit.data.readers import read_typed, scan, scan_bytes, structure_proven
from ctrkit.data.store import encode_frame
from ctrkit.errors import DataError
from ctrkit.schema import FeatureSchema

FEATURES = [
    {"name": "n1", "kind": "numeric", "bucketize": {"method": "criteo_log2"}, "min_count": 2},
    {"name": "n2", "kind": "numeric", "bucketize": {"method": "criteo_log2"}, "fill_value": -1.5},
    {"name": "n3", "kind": "numeric", "normalizer": "standard"},
    {"name": "n4", "kind": "numeric", "bucketize": {"method": "criteo_log2"}},  # fractions
    {"name": "n5", "kind": "numeric", "bucketize": {"method": "criteo_log2"}},  # whole, read as Float64
    {"name": "c1", "kind": "categorical", "min_count": 2},
    {"name": "c2", "kind": "categorical", "fill_value": "b"},  # the fill value is also a value
    {"name": "c3", "kind": "categorical"},
    {"name": "c4", "kind": "categorical", "share_vocab_with": "c3"},
    {"name": "c5", "kind": "categorical", "hash_buckets": 5},
]
SCHEMA = FeatureSchema.from_dict({"features": FEATURES, "tasks": [{"name": "click", "column": "y"}]})
#: A categorical 'a', a numeric 'x' and the label 'y'.
A_X_SCHEMA = FeatureSchema.from_dict(
    {"features": [{"name": "a", "kind": "categorical"}, {"name": "x", "kind": "numeric"}],
     "tasks": [{"name": "c", "column": "y"}]}  # fmt: skip
)
HEADER = ["n1", "n2", "n3", "n4", "n5", "c1", "c2", "c3", "c4", "c5", "y"]
#: How the fast path may type the numeric columns: integer counts, and floats.
TYPED = {"n1": pl.Int64(), "n2": pl.Int64(), "n3": pl.Float64(), "n4": pl.Float64(), "n5": pl.Float64()}


def random_rows(rng: np.random.Generator, n: int) -> str:
    def num(whole_only: bool) -> str:
        r = rng.random()
        if r < 0.1:
            return ""
        if r < 0.2 and not whole_only:
            return f"{rng.normal() * 10:.3f}"
        return str(int(rng.integers(-5, 3000)))

    def cat(k: int) -> str:
        return "" if rng.random() < 0.1 else "abcdefghij"[int(rng.integers(0, k))]

    lines = [",".join(HEADER)]
    for _ in range(n):
        nums = [num(True), num(True), num(False), num(False), num(True)]
        lines.append(",".join([*nums, cat(10), cat(4), cat(6), cat(8), cat(7), str(int(rng.integers(0, 2)))]))
    return "\n".join(lines) + "\n"


def test_fast_and_string_paths_give_the_same_encoders_and_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = source_file(tmp_path / "train.csv")
    valid = source_file(tmp_path / "valid.csv")
    train.path.write_text(random_rows(rng, 3000))
    valid.path.write_text(random_rows(rng, 500))
    needed = SCHEMA.source_columns
    typed = read_typed(train, needed, TYPED, all_columns=True)
    assert typed is not None and typed["n1"].dtype == pl.Int64 and typed["n4"].dtype == pl.Float64
    assert read_typed(train, needed, {"n4": pl.Int64()}, all_columns=True) is None  # a fraction
    text = scan(train, needed).collect()  # everything as strings
    reference = Encoders.fit(SCHEMA, text.lazy())  # lazy: the expression path only
    for frame in (typed, text):
        enc = Encoders.fit(SCHEMA, frame)  # in memory: bincount, row groups
        # (a standard deviation may differ in its last bit with the frame's chunking)
        assert enc.stats["n3"] == pytest.approx(reference.stats["n3"], rel=1e-12)
        enc.stats = reference.stats
        assert enc.to_state() == reference.to_state()
        fitted = enc.fitted_schema()
        want = encode_frame(reference, fitted, frame.lazy())
        got = encode_frame(enc, fitted, frame)  # ids of train from the fit's groups
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.dense, want.dense)
        np.testing.assert_array_equal(got.labels, want.labels)
        v_typed = read_typed(valid, needed, TYPED, all_columns=True)
        assert v_typed is not None
        np.testing.assert_array_equal(
            encode_frame(enc, fitted, v_typed).ids, encode_frame(reference, fitted, scan(valid, needed)).ids
        )
    # A whole-number column with a fractional fill value cannot use a table: same ids all the same.
    assert reference.vocabs["n2"].values


def test_store_from_the_fast_path_equals_the_skip_mode_store(tmp_path: Path) -> None:
    """Skip mode reads every column as text; on clean files both modes must store the same."""
    rng = np.random.default_rng(1)
    paths = {}
    for split, n in (("train", 2000), ("valid", 300)):
        paths[split] = tmp_path / f"{split}.csv"
        paths[split].write_text(random_rows(rng, n))
    sources = {s: source_file(p) for s, p in paths.items()}
    fast = build_store(DataSpec(SCHEMA, sources), tmp_path / "fast", progress=False)
    slow = build_store(DataSpec(SCHEMA, sources, on_bad_rows="skip"), tmp_path / "slow", progress=False)
    assert fast.encoders.vocabs == slow.encoders.vocabs
    assert fast.encoders.stats["n3"] == pytest.approx(slow.encoders.stats["n3"], rel=1e-12)
    for split in paths:
        np.testing.assert_array_equal(fast.arrays(split).ids, slow.arrays(split).ids)
        np.testing.assert_allclose(fast.arrays(split).dense, slow.arrays(split).dense, rtol=1e-6)
        assert fast.manifest["splits"][split]["oov"] == slow.manifest["splits"][split]["oov"]


def test_scan_bytes_counts_and_digest(tmp_path: Path) -> None:
    body = b"a\tb\tc\n1\t2\t3\n4\t5\t6"  # no newline at the end
    p = tmp_path / "t.tsv"
    p.write_bytes(body)
    facts = scan_bytes(p, "\t")
    assert facts.digest == hashlib.sha256(body).hexdigest()
    assert (facts.separators, facts.newlines, facts.ends_with_newline, facts.has_quote) == (6, 2, False, False)
    src = source_file(p)
    assert structure_proven(src, facts, rows=2, fields=3)
    assert not structure_proven(src, facts, rows=3, fields=3)  # a line Polars did not read
    assert scan_bytes(p, None).separators == -1  # hash only


def test_a_long_row_and_a_short_row_that_balance_out(tmp_path: Path) -> None:
    """The separator total is right, but Polars' ragged-row check (and then the line check)
    catches the first bad line."""
    p = tmp_path / "t.csv"
    p.write_text("a,x,y\nu,1,1\nv,2\nw,3,1,7\n")
    schema = A_X_SCHEMA
    with pytest.raises(DataError) as e:
        build_store(DataSpec(schema, {"train": source_file(p)}), tmp_path / "s", progress=False)
    assert e.value.line == 3 and "2 fields, expected 3" in str(e.value)


def test_short_row_when_few_columns_are_read(tmp_path: Path) -> None:
    """With most columns unread the structure is checked line by line."""
    p = tmp_path / "t.csv"
    p.write_text("a,x,y,p,q,r,s\nu,1,1,0,0,0,0\nv,2,0,0,0,0\n")
    schema = FeatureSchema.from_dict(
        {"features": [{"name": "a", "kind": "categorical"}], "tasks": [{"name": "c", "column": "y"}]}
    )
    with pytest.raises(DataError) as e:
        build_store(DataSpec(schema, {"train": source_file(p)}), tmp_path / "s", progress=False)
    assert e.value.line == 3 and "6 fields, expected 7" in str(e.value)


def test_quoted_separator_is_one_field(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text('a,x,y\n"u,v",1,1\nw,2,0\n"u,v",3,1\n')
    schema = A_X_SCHEMA
    st = build_store(DataSpec(schema, {"train": source_file(p)}), tmp_path / "s", progress=False)
    assert st.encoders.vocabs["a"].values == ["u,v", "w"]
    assert st.arrays("train").ids[:, 0].tolist() == [2, 3, 2]


def test_short_row_in_a_quoted_file(tmp_path: Path) -> None:
    """Polars fills a short row with nulls without a word; a file with quotes gets its fields
    counted record by record (a quoted separator or newline is part of its field)."""
    p = tmp_path / "t.csv"
    p.write_text('a,x,y\n"u,v",1,1\n"multi\nline",2,0\nw,3\n"u,v",3,1\n')
    schema = A_X_SCHEMA
    with pytest.raises(DataError, match="row has 2 fields, expected 3") as e:
        build_store(DataSpec(schema, {"train": source_file(p)}), tmp_path / "s", progress=False)
    assert e.value.line == 5  # (the record before spans lines 3 and 4)
    p.write_text('a,x,y\n"u,v",1,1\nw,3\n"u,v",3,1\n')
    st = build_store(DataSpec(schema, {"train": source_file(p)}, on_bad_rows="skip"), tmp_path / "k", progress=False)
    assert st.manifest["splits"]["train"]["rejected"] == 1 and st.rows("train") == 2


def test_fill_value_that_is_also_a_value(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("a,y\nb,1\n,0\nc,1\nc,0\n,1\n")
    schema = FeatureSchema.from_dict(
        {"features": [{"name": "a", "kind": "categorical", "fill_value": "b"}], "tasks": [{"name": "c", "column": "y"}]}
    )
    st = build_store(DataSpec(schema, {"train": source_file(p)}), tmp_path / "s", progress=False)
    assert st.encoders.vocabs["a"].values == ["b", "c"] and st.encoders.vocabs["a"].counts == [3, 2]
    assert st.arrays("train").ids[:, 0].tolist() == [2, 2, 3, 3, 2]


def test_a_column_that_is_also_a_token_stays_text(tmp_path: Path) -> None:
    """A numeric feature and a categorical one reading the same column: the categorical token is
    the text as written ('03', '3.0'), not the number's string form."""
    p = tmp_path / "t.csv"
    p.write_text("x,y\n03,1\n3.0,0\n03,1\n")
    schema = FeatureSchema.from_dict(
        {"features": [{"name": "n", "kind": "numeric", "column": "x", "bucketize": {"method": "criteo_log2"}},
                      {"name": "t", "kind": "categorical", "column": "x"}],
         "tasks": [{"name": "c", "column": "y"}]}  # fmt: skip
    )
    st = build_store(DataSpec(schema, {"train": source_file(p)}), tmp_path / "s", progress=False)
    assert st.encoders.vocabs["t"].values == ["03", "3.0"]
    assert st.encoders.vocabs["n"].values == ["1"]  # floor(ln(3)^2)

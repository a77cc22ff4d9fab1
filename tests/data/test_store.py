"""The store: layout and dtypes, reuse when nothing changed, rebuild when the schema or a source
changes, atomic writes (a crash leaves the old store or nothing), and the skip-bad-rows mode."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import ctrkit.data.store as store_mod
from ctrkit.data import DataSpec, build_store, source_file
from ctrkit.data.store import Store
from ctrkit.errors import DataError
from ctrkit.schema import FeatureSchema

FEATURES = [
    {"name": "a", "kind": "categorical"},
    {"name": "x", "kind": "numeric", "normalizer": "minmax"},
    {"name": "h", "kind": "sequence", "delimiter": "|", "share_vocab_with": "a"},
]
SCHEMA = FeatureSchema.from_dict({"features": FEATURES, "tasks": [{"name": "click", "column": "y"}], "group": "g"})
TRAIN = "a,x,h,y,g\nu,1,u|v,1,g1\nv,2,,0,g1\nu,3,v,1,g2\nw,4,w|u|v,0,g3\n"
VALID = "a,x,h,y,g\nu,2,v,1,g1\nz,9,z,0,g9\n"
TEST = "a,x,h,y,g\nv,1,u,0,g2\n"


def files(tmp_path: Path, train: str = TRAIN, valid: str = VALID, test: str = TEST) -> dict[str, Path]:
    d = tmp_path / "raw"
    d.mkdir(exist_ok=True)
    out = {}
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        (d / f"{split}.csv").write_text(text)
        out[split] = d / f"{split}.csv"
    return out


def spec(paths: dict[str, Path], schema: FeatureSchema = SCHEMA, **kw) -> DataSpec:
    return DataSpec(schema, {s: source_file(p) for s, p in paths.items()}, **kw)


def test_layout_and_dtypes(tmp_path: Path) -> None:
    st = build_store(spec(files(tmp_path)), tmp_path / "store", progress=False)
    assert st.splits == ["train", "valid", "test"]
    assert {s: st.rows(s) for s in st.splits} == {"train": 4, "valid": 2, "test": 1}
    a = st.arrays("train")
    assert a.ids.dtype == np.int32 and a.ids.shape == (4, 1)
    assert a.dense.dtype == np.float32 and a.dense.shape == (4, 1)
    assert a.labels.dtype == np.float32 and a.labels.shape == (4, 1)
    assert a.group is not None and a.group.dtype == np.int64
    assert a.group[0] == a.group[1] != a.group[2]
    assert a.seq_offsets["h"].dtype == np.int64 and a.seq_offsets["h"].tolist() == [0, 2, 2, 3, 6]
    assert a.seq_values["h"].dtype == np.int32
    assert isinstance(a.ids, np.memmap)
    for name in ("manifest.json", "encoders.json", "train/ids.npy", "valid/labels.npy", "test/seq.h.values.npy"):
        assert (st.dir / name).exists()
    m = json.loads((st.dir / "manifest.json").read_text())
    assert m["splits"]["valid"]["oov"] == {"a": 1}
    assert Store.open(st.dir).manifest == st.manifest


def test_reuse_when_unchanged(tmp_path: Path) -> None:
    paths = files(tmp_path)
    st1 = build_store(spec(paths), tmp_path / "store", progress=False)
    before = (st1.manifest["created"], st1.manifest["fingerprint"], os.stat(st1.dir).st_ino, os.stat(st1.dir / "train" / "ids.npy").st_mtime_ns)
    st2 = build_store(spec(paths), tmp_path / "store", progress=False)
    after = (st2.manifest["created"], st2.manifest["fingerprint"], os.stat(st2.dir).st_ino, os.stat(st2.dir / "train" / "ids.npy").st_mtime_ns)
    assert before == after
    # touching a file (same content) keeps the fingerprint: content hash, not mtime
    os.utime(paths["valid"], ns=(1, 1))
    st3 = build_store(spec(paths), tmp_path / "store", progress=False)
    assert st3.manifest["fingerprint"] == before[1]


def test_force_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = files(tmp_path)
    build_store(spec(paths), tmp_path / "store", progress=False)
    calls = []
    real = store_mod._write_store  # (either reader: both write through it)
    monkeypatch.setattr(store_mod, "_write_store", lambda *a, **k: calls.append(1) or real(*a, **k))
    build_store(spec(paths), tmp_path / "store", progress=False)
    assert calls == []
    build_store(spec(paths), tmp_path / "store", progress=False, force=True)
    assert len(calls) == 1


def test_rebuild_when_schema_changes(tmp_path: Path) -> None:
    paths = files(tmp_path)
    st1 = build_store(spec(paths), tmp_path / "store", progress=False)
    changed = FeatureSchema.from_dict(
        {"features": [dict(FEATURES[0], min_count=3), *FEATURES[1:]], "tasks": [{"name": "click", "column": "y"}], "group": "g"}
    )
    st2 = build_store(spec(paths, changed), tmp_path / "store", progress=False)
    assert st2.manifest["fingerprint"] != st1.manifest["fingerprint"]
    # the vocabulary is shared with 'h': u and v are seen 4 times, w twice (< 3)
    assert st2.encoders.vocabs["a"].values == ["u", "v"]
    assert Store.open(tmp_path / "store").manifest["fingerprint"] == st2.manifest["fingerprint"]


def test_rebuild_when_source_changes(tmp_path: Path) -> None:
    paths = files(tmp_path)
    st1 = build_store(spec(paths), tmp_path / "store", progress=False)
    paths["test"].write_text(TEST + "u,2,,1,g1\n")
    st2 = build_store(spec(paths), tmp_path / "store", progress=False)
    assert st2.manifest["fingerprint"] != st1.manifest["fingerprint"]
    assert st2.rows("test") == 2


def test_rebuild_when_read_options_change(tmp_path: Path) -> None:
    paths = files(tmp_path)
    st1 = build_store(spec(paths), tmp_path / "store", progress=False)
    st2 = build_store(spec(paths, on_bad_rows="skip"), tmp_path / "store", progress=False)
    assert st2.manifest["fingerprint"] != st1.manifest["fingerprint"]


def _crash_on_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash while the test split is written, by either reader."""
    from ctrkit.data import dictscan

    real = store_mod._encode_split
    real_native = dictscan._write_gathered

    def boom(enc, schema, frame, out):
        if out.name == "test":
            raise RuntimeError("simulated crash while writing the test split")
        return real(enc, schema, frame, out)

    def boom_native(path, *a, **kw):
        if path.parent.name == "test":
            raise RuntimeError("simulated crash while writing the test split")
        return real_native(path, *a, **kw)

    monkeypatch.setattr(store_mod, "_encode_split", boom)
    monkeypatch.setattr(dictscan, "_write_gathered", boom_native)


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp" in p.name or ".old" in p.name]


def test_crash_leaves_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _crash_on_test(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated"):
        build_store(spec(files(tmp_path)), tmp_path / "stores" / "s", progress=False)
    assert not (tmp_path / "stores" / "s").exists()
    assert leftovers(tmp_path / "stores") == []


def test_crash_keeps_old_store_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = files(tmp_path)
    old = build_store(spec(paths), tmp_path / "stores" / "s", progress=False)
    old_manifest = (old.dir / "manifest.json").read_text()
    old_ids = np.load(old.dir / "train" / "ids.npy").copy()
    paths["train"].write_text(TRAIN + "q,5,,1,g4\n")
    _crash_on_test(monkeypatch)
    with pytest.raises(RuntimeError):
        build_store(spec(paths), tmp_path / "stores" / "s", progress=False)
    assert (old.dir / "manifest.json").read_text() == old_manifest
    np.testing.assert_array_equal(np.load(old.dir / "train" / "ids.npy"), old_ids)
    assert leftovers(tmp_path / "stores") == []
    monkeypatch.undo()
    new = build_store(spec(paths), tmp_path / "stores" / "s", progress=False)
    assert new.rows("train") == 5 and leftovers(tmp_path / "stores") == []


def test_refuses_to_replace_a_non_store_directory(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a ctrkit store"):
        build_store(spec(files(tmp_path)), target, progress=False)
    assert (target / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_store(spec(files(tmp_path)), empty, progress=False).rows("train") == 4


def test_open_incomplete_store(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="manifest"):
        Store.open(tmp_path / "half")


def test_needs_train_split(tmp_path: Path) -> None:
    paths = files(tmp_path)
    with pytest.raises(DataError, match="train"):
        build_store(DataSpec(SCHEMA, {"valid": source_file(paths["valid"])}), tmp_path / "s", progress=False)


# ---------------------------------------------------------------------- skip mode
BAD_TRAIN = (
    "a,x,h,y,g\n"
    "u,1,u|v,1,g1\n"  # 2 ok
    "v,2,,0\n"  # 3 too few fields
    "u,abc,v,1,g2\n"  # 4 text in numeric
    "w,4,w,0,g3,extra\n"  # 5 too many fields
    "v,2,,maybe,g1\n"  # 6 bad label
    "v,5,,0,g1\n"  # 7 ok
)


def test_skip_mode_counts_and_writes_rejects(tmp_path: Path) -> None:
    paths = files(tmp_path, train=BAD_TRAIN, valid="a,x,h,y,g\nu,2,v,1,g1\nu,x,v,1,g1\n")
    st = build_store(spec(paths, on_bad_rows="skip"), tmp_path / "store", progress=False)
    assert st.rows("train") == 2 and st.rows("valid") == 1 and st.rows("test") == 1
    m = st.manifest["splits"]
    assert (m["train"]["rejected"], m["valid"]["rejected"], m["test"]["rejected"]) == (4, 1, 0)
    rej = pl.read_csv(st.dir / "rejects" / "train.csv")
    assert rej["line"].to_list() == [3, 4, 5, 6]
    reasons = dict(zip(rej["line"].to_list(), rej["reason"].to_list()))
    assert "fields" in reasons[3] and "fields" in reasons[5]
    assert "'x'" in reasons[4] and "number" in reasons[4]
    assert "'y'" in reasons[6] and "label" in reasons[6]
    assert "abc" in dict(zip(rej["line"].to_list(), rej["raw"].to_list()))[4]
    assert pl.read_csv(st.dir / "rejects" / "valid.csv")["line"].to_list() == [3]
    assert pl.read_csv(st.dir / "rejects" / "test.csv").height == 0
    # encoders were fitted on the kept rows only
    assert st.encoders.stats["x"] == {"mean": 3.0, "std": pytest.approx(2.828427, rel=1e-5), "min": 1.0, "max": 5.0}


def test_error_mode_stops_at_first_bad_row(tmp_path: Path) -> None:
    paths = files(tmp_path, train=BAD_TRAIN)
    with pytest.raises(DataError) as e:
        build_store(spec(paths), tmp_path / "store", progress=False)
    assert e.value.line == 3 and e.value.file == str(paths["train"])
    assert not (tmp_path / "store").exists()


def test_native_reader_is_built_where_a_compiler_exists() -> None:
    """setup.py builds ctrkit.data._dictscan as an optional extension: without a compiler the
    install goes on (the Polars reader does everything); with one, a failed build is a bug."""
    from ctrkit.data import dictscan

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here")
    assert dictscan._dictscan is not None, "the C extension ctrkit.data._dictscan was not built"


A_X = FeatureSchema.from_dict(
    {"features": [{"name": "a", "kind": "categorical"}, {"name": "x", "kind": "numeric"}], "tasks": [{"name": "c", "column": "y"}]}
)


@pytest.mark.parametrize("native", ["1", "0"])
def test_a_split_without_rows_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: str) -> None:
    monkeypatch.setenv("CTRKIT_NATIVE_READER", native)
    (tmp_path / "train.csv").write_text("a,x,y\nu,1,0\nv,2,1\n")
    (tmp_path / "valid.csv").write_text("a,x,y\n")
    spec = DataSpec(A_X, {s: source_file(tmp_path / f"{s}.csv") for s in ("train", "valid")})
    with pytest.raises(DataError, match="split 'valid' is empty: the file has no data rows") as e:
        build_store(spec, tmp_path / "store", progress=False)
    assert e.value.file == str(tmp_path / "valid.csv")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("native", ["1", "0"])
def test_byte_order_mark_before_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: str) -> None:
    monkeypatch.setenv("CTRKIT_NATIVE_READER", native)
    (tmp_path / "train.csv").write_bytes("\ufeffa,x,y\nu,1,0\nv,2,1\n".encode())
    st = build_store(DataSpec(A_X, {"train": source_file(tmp_path / "train.csv")}), tmp_path / "store", progress=False)
    assert st.encoders.vocabs["a"].values == ["u", "v"] and st.rows("train") == 2


def test_lone_carriage_returns_are_named(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("a,x,y\ru,1,0\rv,2,1\r")
    with pytest.raises(DataError, match="lone carriage return") as e:
        build_store(DataSpec(A_X, {"train": source_file(tmp_path / "train.csv")}), tmp_path / "store", progress=False)
    assert e.value.line == 1


def test_a_column_named_twice_in_the_header(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("a,a,x,y\nu,w,1,0\n")
    with pytest.raises(DataError, match="more than once") as e:
        build_store(DataSpec(A_X, {"train": source_file(tmp_path / "train.csv")}), tmp_path / "store", progress=False)
    assert e.value.column == "a" and e.value.line == 1
    # A repeated name nobody reads is no problem.
    (tmp_path / "train.csv").write_text("a,junk,x,junk,y\nu,1,1,2,0\nv,1,2,2,1\n")
    st = build_store(DataSpec(A_X, {"train": source_file(tmp_path / "train.csv")}), tmp_path / "store", progress=False)
    assert st.rows("train") == 2


@pytest.mark.parametrize("native", ["1", "0"])
def test_spaces_around_header_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: str) -> None:
    """Both readers take the names as header_columns() reads them (stripped)."""
    monkeypatch.setenv("CTRKIT_NATIVE_READER", native)
    (tmp_path / "train.csv").write_text("a , x , y\nu,1,0\nv,2,1\n")
    st = build_store(DataSpec(A_X, {"train": source_file(tmp_path / "train.csv")}), tmp_path / "store", progress=False)
    assert st.encoders.vocabs["a"].values == ["u", "v"] and st.manifest["reader"] == ("native" if native == "1" else "polars")

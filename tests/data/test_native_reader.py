"""The native reader (ctrkit.data._dictscan + ctrkit.data.dictscan) writes the store the Polars
reader writes, byte for byte, and hands every file or value it does not take to the Polars reader,
whose errors name the file, line and column."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ctrkit.data import DataSpec, build_store, dictscan, source_file
from ctrkit.errors import DataError
from ctrkit.schema import FeatureSchema

if dictscan._dictscan is None:  # (tests/data/test_store.py fails when a C compiler was there)
    pytest.skip("the native reader is not built: no C compiler at install time", allow_module_level=True)
from ctrkit.data import _dictscan  # noqa: E402

FEATURES = [
    {"name": "n1", "kind": "numeric", "bucketize": {"method": "criteo_log2"}, "min_count": 2},
    {"name": "n2", "kind": "numeric", "bucketize": {"method": "criteo_log2"}, "fill_value": -1.5},
    {"name": "n3", "kind": "numeric", "normalizer": "log"},
    {"name": "n4", "kind": "numeric", "bucketize": {"method": "criteo_log2"}},  # fractions
    {"name": "n5", "kind": "numeric"},
    {"name": "n5std", "column": "n5", "kind": "numeric", "normalizer": "standard", "fill_value": 2.5},  # shares n5
    {"name": "n6", "kind": "numeric", "normalizer": "minmax"},
    {"name": "n7", "kind": "numeric", "bucketize": {"method": "quantile", "num_buckets": 4}},
    {"name": "c1", "kind": "categorical", "min_count": 2},
    {"name": "c2", "kind": "categorical", "fill_value": "b"},  # the fill value is also a value
    {"name": "c3", "kind": "categorical"},
    {"name": "c4", "kind": "categorical", "share_vocab_with": "c3"},
    {"name": "c5", "kind": "categorical", "hash_buckets": 5},
    {"name": "h1", "kind": "sequence", "delimiter": "|", "max_len": 3, "share_vocab_with": "c1"},
    {"name": "h2", "kind": "sequence", "delimiter": "^", "max_len": 2, "truncate": "post", "min_count": 3},
]
SCHEMA = FeatureSchema.from_dict(
    {"features": FEATURES, "tasks": [{"name": "click", "column": "y"}, {"name": "buy", "column": "z"}],
     "group": "user", "domain": "scene"}  # fmt: skip
)
HEADER = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "c1", "c2", "c3", "c4", "c5", "h1", "h2", "skip", "y", "z", "user", "scene"]
WORDS = ["a", "b", "c", "d", "é", "日本", "long-value-over-eight-bytes", "long-value-over-eight-bytez", "x" * 40]


def rows(rng: np.random.Generator, n: int, extra: int = 0) -> list[list[str]]:
    """Random rows; ``extra`` adds values that only this split has."""

    def num(whole: bool) -> str:
        r = rng.random()
        if r < 0.1:
            return ""
        if r < 0.3 and not whole:
            return f"{rng.normal() * 10:.{int(rng.integers(1, 6))}f}"
        if r < 0.35 and not whole:
            return f"{rng.random():.2e}"
        return str(int(rng.integers(-5, 3000)))

    def cat(k: int) -> str:
        if rng.random() < 0.1:
            return ""
        if extra and rng.random() < 0.05:
            return f"new{int(rng.integers(0, extra))}"
        return WORDS[int(rng.integers(0, k))]

    labels = ["0", "1", "1.0", "true", "False", "0.0", " 1"]
    out = []
    for _ in range(n):
        nums = [num(True), num(True), num(False), num(False), num(False), num(False), num(False)]
        user = f"u{int(rng.integers(0, 200))}" if rng.random() > 0.02 else ""
        scene = ["home", "search", "feed"][int(rng.integers(0, 3))]
        # Sequences: up to 5 items (cut to max_len), empty items dropped, some rows empty.
        h1 = "|".join(cat(9) for _ in range(int(rng.integers(0, 6))))
        h2 = "^".join(cat(6) for _ in range(int(rng.integers(0, 4))))
        out.append([*nums, cat(9), cat(4), cat(6), cat(8), cat(7), h1, h2, "ignored", labels[int(rng.integers(0, 7))],
                    str(int(rng.integers(0, 2))), user, scene])  # fmt: skip
    return out


def write(path: Path, header: list[str] | None, body: list[list[str]], sep: str = ",", eol: str = "\n", last_eol: bool = True) -> None:
    lines = ([sep.join(header)] if header else []) + [sep.join(r) for r in body]
    path.write_bytes((eol.join(lines) + (eol if last_eol else "")).encode())


def both_ways(tmp_path: Path, spec: DataSpec, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Build the store natively (asserting the native reader took it) and with Polars alone."""
    taken = []
    real = dictscan.build

    def spy(*a, **kw):
        got = real(*a, **kw)
        taken.append(got is not None)
        return got

    monkeypatch.setattr(dictscan, "build", spy)
    build_store(spec, tmp_path / "native", progress=False)
    assert taken == [True], "the native reader did not take these files"
    monkeypatch.setenv("CTRKIT_NATIVE_READER", "0")
    build_store(spec, tmp_path / "polars", progress=False)
    monkeypatch.delenv("CTRKIT_NATIVE_READER")
    return tmp_path / "native", tmp_path / "polars"


def assert_same_store(a: Path, b: Path) -> None:
    """Every file identical, byte for byte, with one exception. The mean and standard deviation
    of standard/min-max normalized numerics may differ in their last bit: Polars' own sums depend
    on how its CSV reader chunked the column. The dense columns that use them are compared to
    float32 rounding."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    ea, eb = json.loads((a / "encoders.json").read_text()), json.loads((b / "encoders.json").read_text())
    sa, sb = ea.pop("stats"), eb.pop("stats")
    assert ea == eb and sa.keys() == sb.keys()
    for name in sa:
        assert sa[name] == pytest.approx(sb[name], rel=1e-12)
    schema = FeatureSchema.from_dict(ea["schema"])
    normalized = [i for i, f in enumerate(schema.numeric) if f.normalizer in ("standard", "minmax")]
    for rel in files:
        if rel.name == "manifest.json":
            ma, mb = json.loads((a / rel).read_text()), json.loads((b / rel).read_text())
            assert (ma.pop("reader"), mb.pop("reader")) == ("native", "polars")
            ma.pop("created"), mb.pop("created")
            assert ma == mb
        elif rel.name == "dense.npy" and sa != sb:
            da, db = np.load(a / rel), np.load(b / rel)
            others = [i for i in range(da.shape[1]) if i not in normalized]
            np.testing.assert_array_equal(da[:, others], db[:, others])
            np.testing.assert_allclose(da[:, normalized], db[:, normalized], rtol=1e-6, atol=1e-7)
        elif rel.name != "encoders.json":
            assert filecmp.cmp(a / rel, b / rel, shallow=False), f"{rel} differs"


def splits(tmp_path: Path, seed: int = 0, **write_kw) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    d = tmp_path / "raw"
    d.mkdir()
    out = {}
    for split, n, extra in (("train", 3000, 0), ("valid", 400, 3), ("test", 300, 5)):
        out[split] = d / f"{split}.csv"
        write(out[split], HEADER, rows(rng, n, extra), **write_kw)
    return out


def test_same_store_as_the_polars_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = splits(tmp_path)
    spec = DataSpec(SCHEMA, {s: source_file(p) for s, p in paths.items()})
    assert dictscan.unsupported(SCHEMA, dict(spec.sources), "error") is None
    native, polars = both_ways(tmp_path, spec, monkeypatch)
    assert_same_store(native, polars)
    manifest = json.loads((native / "manifest.json").read_text())
    assert manifest["splits"]["test"]["oov"]["c1"] > 0  # values seen only in test are OOV
    assert (native / "valid" / "group.npy").exists() and (native / "test" / "domain.npy").exists()
    assert manifest["splits"]["train"]["sequences"]["h1"]["items"] > 0


def test_same_store_from_headerless_crlf_tsv_without_last_newline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = splits(tmp_path, seed=1, sep="\t", eol="\r\n", last_eol=False)
    for p in paths.values():  # drop the header line: the columns are given instead
        p.write_bytes(p.read_bytes().split(b"\r\n", 1)[1])
    spec = DataSpec(SCHEMA, {s: source_file(p, format="tsv", header=False, columns=HEADER) for s, p in paths.items()})
    assert_same_store(*both_ways(tmp_path, spec, monkeypatch))


def test_same_store_when_files_are_cut_into_many_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces scanned in parallel by their own tables, then merged: codes differ, the store not."""
    paths = splits(tmp_path, seed=2)
    monkeypatch.setattr(dictscan, "_MIN_PIECE", 1000)
    monkeypatch.setattr(dictscan.pl, "thread_pool_size", lambda: 7)
    cut = dictscan._cut({s: source_file(p) for s, p in paths.items()}, ["train", "valid", "test"], 7)
    assert len([p for p in cut if p.split == "train"]) > 3
    assert [p.header for p in cut] == [p.start == 0 for p in cut]
    spec = DataSpec(SCHEMA, {s: source_file(p) for s, p in paths.items()})
    assert_same_store(*both_ways(tmp_path, spec, monkeypatch))


@pytest.mark.parametrize(
    "line, why, error",
    [
        ("1,2,3", "wrong field count", "row has 3 fields"),
        ("1,2,3,4,5,6,7,a,b,c,d,e,s|t,q,f,1,0,u1,shop", "a domain unseen in train", "domain unseen in train"),
        ("1,2,3,4,5,6,7,a,b,c,d,e,s|t,q,f,1,0,u1,", "a row without a domain", "domain is missing"),
        ("", "blank line", "row has"),
        ('1,2,3,4,5,6,7,"a,b",b,c,d,e,s|t,q,f,1,0,u1,feed', "quoted separator", None),
        ("1,2,3,4,5,6,7,a,b,c,d,e,s|t,q,f,maybe,0,u1,feed", "label", "label is not 0/1"),
        ("1,2,x3,4,5,6,7,a,b,c,d,e,s|t,q,f,1,0,u1,feed", "text in a numeric column", "is not a finite number"),
        ("1,2,inf,4,5,6,7,a,b,c,d,e,s|t,q,f,1,0,u1,feed", "an infinite number", "is not a finite number"),
        ("nan,2,3,4,5,6,7,a,b,c,d,e,s|t,q,f,1,0,u1,feed", "not a number", "is not a finite number"),
        ("1,2, 3,4,5,6,7,a,b,c,d,e,s|t,q,f,1,0,u1,feed", "a padded number", None),
    ],
)
def test_anything_else_goes_to_the_polars_reader(tmp_path: Path, line: str, why: str, error: str | None) -> None:
    paths = splits(tmp_path, seed=3)
    text = paths["valid"].read_text().splitlines()
    text.insert(5, line)  # line 6 of valid
    paths["valid"].write_text("\n".join(text) + "\n")
    spec = DataSpec(SCHEMA, {s: source_file(p) for s, p in paths.items()})
    steps: list[str] = []
    assert dictscan.build(SCHEMA, dict(spec.sources), ["train", "valid", "test"], tmp_path, steps.append) is None, why
    assert not (tmp_path / "train").exists()  # it wrote nothing
    if error is None:
        build_store(spec, tmp_path / "store", progress=False)  # the Polars reader takes it
        return
    with pytest.raises(DataError, match=error) as e:
        build_store(spec, tmp_path / "store", progress=False)
    assert e.value.line == 6 and e.value.file == str(paths["valid"])


def test_undecodable_bytes_go_to_the_polars_reader(tmp_path: Path) -> None:
    paths = splits(tmp_path, seed=4)
    body = paths["train"].read_bytes().replace(b",a,", b",\xff\xfe,", 1)
    paths["train"].write_bytes(body)
    spec = DataSpec(SCHEMA, {s: source_file(p) for s, p in paths.items()})
    assert dictscan.build(SCHEMA, dict(spec.sources), ["train", "valid", "test"], tmp_path, lambda _: None) is None


def test_what_it_does_not_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = splits(tmp_path, seed=5)
    sources = {s: source_file(p) for s, p in paths.items()}
    assert "skipping bad rows" in dictscan.unsupported(SCHEMA, sources, "skip")
    monkeypatch.setenv("CTRKIT_NATIVE_READER", "0")
    assert "CTRKIT_NATIVE_READER" in dictscan.unsupported(SCHEMA, sources, "error")
    monkeypatch.delenv("CTRKIT_NATIVE_READER")
    pq = tmp_path / "train.parquet"
    pl.read_csv(paths["train"], infer_schema=False).write_parquet(pq)
    assert "not a plain CSV/TSV" in dictscan.unsupported(SCHEMA, {**sources, "train": source_file(pq)}, "error")


def test_a_crash_while_writing_leaves_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = splits(tmp_path, seed=6)
    spec = DataSpec(SCHEMA, {s: source_file(p) for s, p in paths.items()})
    real = dictscan._write_gathered

    def boom(path: Path, *a, **kw) -> None:
        if path.parent.name == "test":
            raise RuntimeError("simulated crash while writing the test split")
        real(path, *a, **kw)

    monkeypatch.setattr(dictscan, "_write_gathered", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_store(spec, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CRITEO_RAW = SHARED / "criteo_sample" / "train_head10k.txt"


@pytest.mark.parametrize("name", ["frappe_x1", "criteo_x4"])
def test_same_store_on_the_real_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Frappe_x1's official files and the raw Criteo rows (through the criteo_x4 adapter)."""
    from ctrkit.data.datasets import get_dataset

    if name == "frappe_x1":
        src = SHARED / "frappe_x1"
        if not (src / "valid.csv").exists():
            pytest.skip("shared Frappe_x1 not present")
    else:
        if not CRITEO_RAW.exists():
            pytest.skip("shared Criteo sample not present")
        src = tmp_path / "raw"
        src.mkdir()
        (src / "train.txt").symlink_to(CRITEO_RAW.resolve())
    spec = get_dataset(name).data_spec(src, work_dir=tmp_path / "work")
    assert_same_store(*both_ways(tmp_path, spec, monkeypatch))


# ------------------------------------------------------------------------------ the extension
def scan(data: bytes, ncols: int, colmap: list[int], header: bool = False, sep: str = ","):
    s = _dictscan.Scanner(ncols)
    cap = _dictscan.count_lines(data)
    codes = np.full((cap, ncols), -1, dtype=np.int32)
    status, rows, line = s.scan(data, ord(sep), int(header), np.array(colmap, dtype=np.int32), codes)
    return s, codes[:rows], status, line


def values(s, k: int) -> list[bytes]:
    blob, offs = s.values(k)
    o = np.frombuffer(offs, dtype=np.int64)
    return [blob[a:b] for a, b in zip(o, o[1:])]


def test_scanner_codes_values_and_counts() -> None:
    data = b"h1,h2,h3\r\nx,1,p\r\ny,,p\r\nx,1,q"
    s, codes, status, _ = scan(data, 2, [1, -1, 0], header=True)
    assert status == _dictscan.SCAN_OK
    assert codes.tolist() == [[0, 0], [0, 1], [1, 0]]  # column 0 reads field 3, column 1 field 1
    assert values(s, 0) == [b"p", b"q"] and values(s, 1) == [b"x", b"y"]
    assert np.frombuffer(s.counts(0), dtype=np.int64).tolist() == [2, 1]


def test_scanner_stops_on_what_it_does_not_take() -> None:
    assert scan(b"a,b\nc\n", 1, [0, -1])[2:] == (_dictscan.SCAN_FIELDS, 2)
    assert scan(b"a,b\nc,d,e\n", 1, [0, -1])[2:] == (_dictscan.SCAN_FIELDS, 2)
    assert scan(b"a,b\n\nc,d\n", 1, [0, -1])[2:] == (_dictscan.SCAN_BLANK, 2)
    assert scan(b'a,b\n"c",d\n', 1, [0, -1])[2:] == (_dictscan.SCAN_QUOTE, 2)


def test_scanner_merge_remaps_and_adds_counts() -> None:
    a, _, _, _ = scan(b"x\ny\nx\n", 1, [0])
    b, codes_b, _, _ = scan(b"z\nx\nz\n", 1, [0])
    remap = np.frombuffer(a.merge(b)[0], dtype=np.int32)
    assert values(a, 0) == [b"x", b"y", b"z"]
    assert remap[codes_b[:, 0]].tolist() == [2, 0, 2]
    assert np.frombuffer(a.counts(0), dtype=np.int64).tolist() == [3, 1, 2]


def test_gather_reads_through_the_tables() -> None:
    codes = np.array([[0, 1], [1, 0], [1, 1]], dtype=np.int32)
    luts = np.array([10, 11, 20, 21], dtype=np.int32)  # column 0: [10, 11]; column 1: [20, 21]
    out = np.empty((3, 3), dtype=np.int32)
    _dictscan.gather(codes, 2, np.array([1, 0, 1], dtype=np.int32), np.array([2, 0, 2], dtype=np.int64), luts, out)
    assert out.tolist() == [[21, 10, 21], [20, 11, 20], [21, 11, 21]]
    with pytest.raises(ValueError):
        _dictscan.gather(codes, 2, np.array([2], dtype=np.int32), np.array([0], dtype=np.int64), luts, out[:, :1].copy())

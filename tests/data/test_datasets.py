"""Dataset adapters: registry, expected files and checksums, Frappe_x1 from the shared copy, BARS'
x4 split of raw Criteo rows, Avazu/KKBox derived columns, the generic adapter, and downloads
(checksums, atomic writes) over file:// URLs. Nothing here touches the network."""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ctrkit.data import build_store
from ctrkit.data.datasets import (
    DatasetAdapter,
    FileSpec,
    bars_x4_folds,
    dataset_names,
    download_file,
    fetch_dataset,
    get_dataset,
    list_datasets,
)
from ctrkit.data.datasets._base import make_schema
from ctrkit.data.datasets.avazu_x4 import COLUMNS as AVAZU_COLUMNS
from ctrkit.data.datasets.kkbox_x1 import KKBoxX1
from ctrkit.errors import ConfigError, DataError
from ctrkit.schema import NUM_RESERVED, OOV_ID, NumericFeature

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
FRAPPE = SHARED / "frappe_x1"
CRITEO_RAW = SHARED / "criteo_sample" / "train_head10k.txt"
needs_frappe = pytest.mark.skipif(not (FRAPPE / "valid.csv").exists(), reason="shared Frappe_x1 not present")
needs_criteo = pytest.mark.skipif(not CRITEO_RAW.exists(), reason="shared Criteo sample not present")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


# ====================================================================== registry
def test_registry() -> None:
    names = {d.name for d in list_datasets()}
    assert {"frappe_x1", "movielenslatest_x1", "criteo_x1", "criteo_x4", "avazu_x1", "avazu_x4", "kkbox_x1", "generic"} <= names
    assert "criteo_x4_002" in dataset_names() and "avazu_x4_001" in dataset_names()
    assert get_dataset("Frappe_X1").name == "frappe_x1"
    with pytest.raises(KeyError, match="unknown dataset"):
        get_dataset("nope_x9")


@pytest.mark.parametrize("name", [n for n in dataset_names() if n != "generic"])
def test_every_adapter_describes_itself(name: str) -> None:
    ds = get_dataset(name)
    schema = ds.schema()
    assert [t.name for t in schema.tasks] == ["click"]
    assert {f.split for f in ds.files} == {"train", "valid", "test"}
    for f in ds.files:
        assert f.md5 is not None and len(f.md5) == 32 and int(f.md5, 16) >= 0
        assert f.rows and f.rows > 0
    assert ds.urls and all(u.startswith("https://") for u in ds.urls)
    assert ds.embedding_dim in (10, 16, 40, 128)
    assert ds.info()["files"][0]["md5"] == ds.files[0].md5


def test_bars_settings() -> None:
    c4 = get_dataset("criteo_x4").schema()
    i1 = c4.feature("I1")
    assert isinstance(i1, NumericFeature) and i1.bucketize is not None and i1.bucketize.method == "criteo_log2"
    assert {getattr(f, "min_count") for f in c4.features} == {10}
    assert len(c4.categorical) == 39 and c4.numeric == []
    assert {getattr(f, "min_count") for f in get_dataset("criteo_x4_002").schema().features} == {2}
    assert get_dataset("criteo_x4").embedding_dim == 16 and get_dataset("criteo_x4_002").embedding_dim == 40
    c1 = get_dataset("criteo_x1").schema()
    assert len(c1.numeric) == 13 and len(c1.categorical) == 26
    a4 = get_dataset("avazu_x4").schema()
    assert [f.name for f in a4.features][:2] == ["hour", "C1"] and [f.name for f in a4.features][-2:] == ["weekday", "weekend"]
    assert "id" not in [f.name for f in a4.features] and len(a4.features) == 24
    assert {getattr(f, "min_count") for f in a4.features} == {2}
    assert {getattr(f, "min_count") for f in get_dataset("avazu_x4_002").schema().features} == {1}
    kk = get_dataset("kkbox_x1").schema()
    assert [f.name for f in kk.sequences] == ["genre_ids", "artist_name"] and all(f.max_len == 3 for f in kk.sequences)
    with pytest.raises(ValueError):
        get_dataset("criteo_x4", variant="003")


# ====================================================================== locating and verifying
def test_missing_file_names_it_and_says_what_to_download(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("label,user\n")
    with pytest.raises(DataError) as e:
        get_dataset("frappe_x1").data_spec(tmp_path)
    msg = str(e.value)
    assert e.value.file == str(tmp_path / "valid.csv")
    assert "valid.csv" in msg and "ctrkit data download frappe_x1" in msg and "huggingface.co" in msg
    with pytest.raises(DataError, match="does not exist"):
        get_dataset("frappe_x1").data_spec(tmp_path / "nowhere")


def test_verify_detects_mismatch(tmp_path: Path) -> None:
    for name in ("train.csv", "valid.csv", "test.csv"):
        (tmp_path / name).write_text("label,user\n1,2\n")
    ds = get_dataset("movielenslatest_x1")
    with pytest.raises(DataError) as e:
        ds.data_spec(tmp_path, verify=True)
    assert "md5 mismatch" in str(e.value) and ds.files[0].md5 in str(e.value)


@needs_frappe
def test_frappe_verify_official_files_and_refuse_reconstruction() -> None:
    ds = get_dataset("frappe_x1")
    located = ds.locate(FRAPPE)
    assert located["train"].name in ("train.csv", "train_reconstructed.csv")
    assert ds.verify({"valid": located["valid"], "test": located["test"]}) == {"valid": "ok", "test": "ok"}
    if located["train"].name == "train_reconstructed.csv":
        with pytest.raises(DataError, match="not the published train.csv"):
            ds.verify(located)


@needs_frappe
def test_frappe_x1_rows_and_bars_vocabulary(tmp_path: Path) -> None:
    ds = get_dataset("frappe_x1")
    spec = ds.data_spec(FRAPPE)
    assert spec.sources["valid"].path.name == "valid.csv"
    store = build_store(spec, tmp_path / "frappe", progress=False)
    assert {s: store.rows(s) for s in store.splits} == {"train": 202_027, "valid": 57_722, "test": 28_860}
    assert store.manifest["splits"]["train"]["positives"] == {"click": 67_604}
    assert store.manifest["splits"]["valid"]["positives"] == {"click": 19_063}
    # min_count 1: every value seen in train owns an id (vocab = distinct train values + pad + OOV)
    train = pl.read_csv(spec.sources["train"].path, infer_schema=False)
    fields = [f.name for f in store.schema.features]
    assert len(fields) == 10
    distinct = {f: train[f].n_unique() for f in fields}
    for f in fields:
        assert store.schema.vocab_size(f) == distinct[f] + NUM_RESERVED
    # BARS' LR on Frappe_x1 has 5,390 parameters = one weight per (value + OOV) per field + bias,
    # i.e. 5,379 distinct train values (reczoo/BARS LR_frappe_x1_001_ff730f43.log).
    assert sum(distinct.values()) == 5_379
    assert store.schema.vocab_size("weekday") == 7 + NUM_RESERVED and store.schema.vocab_size("cost") == 2 + NUM_RESERVED
    assert store.manifest["splits"]["train"]["oov"] == {f: 0 for f in fields}


# ====================================================================== x4 split
def old_sklearn_folds(y: np.ndarray) -> np.ndarray:
    """scikit-learn 0.19.1's StratifiedKFold(10, shuffle=True, random_state=2018) test folds, rebuilt
    from today's KFold (unchanged) with the shared RandomState the old code passed it."""
    sk = pytest.importorskip("sklearn.model_selection")
    rng = np.random.RandomState(2018)
    classes, inv = np.unique(y, return_inverse=True)
    counts = np.bincount(inv)
    per_class = [sk.KFold(10, shuffle=True, random_state=rng).split(np.zeros(max(c, 10))) for c in counts]
    folds = np.zeros(len(y), dtype=int)
    for k, splits in enumerate(zip(*per_class)):
        for c, (_, test) in enumerate(splits):
            cls = folds[inv == c]
            cls[test[test < len(cls)]] = k
            folds[inv == c] = cls
    return folds


@pytest.mark.parametrize("n,rate", [(25, 0.5), (57, 0.1), (1000, 0.25), (20_011, 0.17)])
def test_bars_x4_folds_match_sklearn_0_19(n: int, rate: float) -> None:
    y = (np.random.RandomState(n).rand(n) < rate).astype(float)
    folds = bars_x4_folds(y)
    np.testing.assert_array_equal(folds, old_sklearn_folds(y))
    sizes = np.bincount(folds, minlength=10)
    assert sizes.max() - sizes.min() <= 2  # stratified folds of (almost) equal size
    for k in range(10):
        assert abs(y[folds == k].sum() - y.sum() / 10) <= 1 or y.sum() < 10


def test_bars_x4_folds_need_enough_rows() -> None:
    with pytest.raises(ValueError):
        bars_x4_folds(np.array([0.0, 1.0, 0.0]))


@needs_criteo
def test_criteo_x4_split_of_raw_rows(tmp_path: Path) -> None:
    ds = get_dataset("criteo_x4")
    paths = ds.split_raw(CRITEO_RAW, tmp_path / "split", progress=False)
    raw_lines = CRITEO_RAW.read_bytes().decode().splitlines()
    y = np.array([float(line.split("\t", 1)[0]) for line in raw_lines])
    folds = old_sklearn_folds(y)
    out = {s: p.read_text().splitlines() for s, p in paths.items()}
    header = "Label," + ",".join(f"I{i}" for i in range(1, 14)) + "," + ",".join(f"C{i}" for i in range(1, 27))
    assert all(lines[0] == header for lines in out.values())
    assert {s: len(v) - 1 for s, v in out.items()} == {"train": 7_998, "valid": 1_001, "test": 1_001}
    as_csv = [line.replace("\t", ",") for line in raw_lines]
    assert out["test"][1:] == [as_csv[i] for i in np.flatnonzero(folds == 0)]
    assert out["valid"][1:] == [as_csv[i] for i in np.flatnonzero(folds == 1)]
    assert out["train"][1:] == [as_csv[i] for k in range(2, 10) for i in np.flatnonzero(folds == k)]
    positives = {s: sum(line.startswith("1,") for line in v[1:]) for s, v in out.items()}
    assert positives == {"train": 1_744, "valid": 219, "test": 219}  # 2,182 positives, stratified
    # a second call reuses the split (stamp) and is byte-identical
    before = {s: md5(p) for s, p in paths.items()}
    mtimes = {s: p.stat().st_mtime_ns for s, p in paths.items()}
    again = ds.split_raw(CRITEO_RAW, tmp_path / "split", progress=False)
    assert {s: md5(p) for s, p in again.items()} == before
    assert {s: p.stat().st_mtime_ns for s, p in again.items()} == mtimes
    assert not [p for p in (tmp_path / "split").iterdir() if p.name.startswith(".")]


@needs_criteo
def test_criteo_x4_store_from_raw_rows(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    src.mkdir()
    os.symlink(CRITEO_RAW, src / "train.txt")  # the raw Kaggle layout: train.txt alone
    ds = get_dataset("criteo_x4")
    spec = ds.data_spec(src, work_dir=tmp_path / "work")
    assert (tmp_path / "work" / "split" / "train.csv").exists()
    store = build_store(spec, tmp_path / "store", progress=False)
    assert {s: store.rows(s) for s in store.splits} == {"train": 7_998, "valid": 1_001, "test": 1_001}

    enc = store.encoders
    train = pl.read_csv(tmp_path / "work" / "split" / "train.csv", infer_schema=False)
    cats = [f.name for f in store.schema.categorical]
    ids = store.arrays("train").ids
    for name in ("I5", "I2", "C3"):
        vocab = enc.vocabs[name]
        assert all(c >= 10 for c in vocab.counts)  # min_count 10
        token_id = {t: i + NUM_RESERVED for i, t in enumerate(vocab.values)}
        raw = train[name].to_list()
        if name.startswith("I"):
            tokens = [str(int(math.floor(math.log(float(v)) ** 2)) if float(v) > 2 else int(float(v))) if v else "0" for v in raw]
        else:
            tokens = [v or "" for v in raw]
        expect = [token_id.get(t, OOV_ID) for t in tokens]
        assert ids[:, cats.index(name)].tolist() == expect
        counts = {t: tokens.count(t) for t in set(tokens)}
        assert set(vocab.values) == {t for t, c in counts.items() if c >= 10}
    # raw I5 = 1382 in the well-known first line -> floor(ln(1382)^2) = 52
    assert "52" in enc.vocabs["I5"].values
    assert store.manifest["splits"]["train"]["oov"]["C3"] > 0  # a long tail of rare hashes
    assert store.schema.vocab_size("C3") == len(enc.vocabs["C3"].values) + NUM_RESERVED


# ====================================================================== Avazu_x4 derived columns
AVAZU_HOURS = ["14102100", "14102123", "14102507", "14102612", "14102915", "14103023"]


def avazu_rows(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        vals = [str(10_000_000_000 + i), str(int(rng.random() < 0.3)), AVAZU_HOURS[i % len(AVAZU_HOURS)]]
        vals += [f"v{rng.integers(0, 4)}" for _ in AVAZU_COLUMNS[3:]]
        rows.append(",".join(vals))
    return rows


def test_avazu_x4_from_raw(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    src.mkdir()
    rows = avazu_rows(300)
    (src / "train.csv").write_text(",".join(AVAZU_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    ds = get_dataset("avazu_x4")
    spec = ds.data_spec(src, work_dir=tmp_path / "work")
    split_dir = tmp_path / "work" / "split"
    sizes = {s: len((split_dir / f"{s}.csv").read_text().splitlines()) - 1 for s in ("train", "valid", "test")}
    assert sum(sizes.values()) == 300 and sizes["test"] == sizes["valid"] == 30
    assert (split_dir / "train.csv").read_text().splitlines()[0] == ",".join(AVAZU_COLUMNS)

    derived = pl.read_parquet(spec.sources["valid"].path)
    assert derived.columns == ["click", *AVAZU_COLUMNS[3:], "hour", "weekday", "weekend"]
    raw_valid = pl.read_csv(split_dir / "valid.csv", infer_schema=False)
    # 2014-10-21 is a Tuesday, 10-25 a Saturday, 10-26 a Sunday
    expect = {"14102100": ("0", "2", "0"), "14102123": ("23", "2", "0"), "14102507": ("7", "6", "1"),
              "14102612": ("12", "0", "1"), "14102915": ("15", "3", "0"), "14103023": ("23", "4", "0")}  # fmt: skip
    got = list(zip(derived["hour"], derived["weekday"], derived["weekend"]))
    assert got == [expect[h] for h in raw_valid["hour"]]
    assert derived["C21"].to_list() == raw_valid["C21"].to_list()

    store = build_store(spec, tmp_path / "store", progress=False)
    assert store.rows("train") == sizes["train"]
    assert store.schema.vocab_size("weekend") == 2 + NUM_RESERVED
    assert store.schema.vocab_size("weekday") == 5 + NUM_RESERVED  # Tue, Sat, Sun, Wed, Thu
    assert all(c >= 2 for v in store.encoders.vocabs.values() for c in v.counts)


def write_avazu_split(d: Path, valid_rows: list[str] | None = None) -> None:
    d.mkdir(exist_ok=True)
    head = ",".join(AVAZU_COLUMNS)
    rows = avazu_rows(60)
    (d / "train.csv").write_text(head + "\n" + "\n".join(rows[:40]) + "\n")
    (d / "valid.csv").write_text(head + "\n" + "\n".join(valid_rows or rows[40:50]) + "\n")
    (d / "test.csv").write_text(head + "\n" + "\n".join(rows[50:]) + "\n")


def test_avazu_x4_bad_hour_names_raw_file_line_column(tmp_path: Path) -> None:
    rows = avazu_rows(5)
    rows[1] = rows[1].replace("14102123", "1410212")
    write_avazu_split(tmp_path / "src", valid_rows=rows)
    with pytest.raises(DataError) as e:
        get_dataset("avazu_x4").data_spec(tmp_path / "src", work_dir=tmp_path / "work")
    assert e.value.file == str(tmp_path / "src" / "valid.csv") and (e.value.line, e.value.column) == (3, "hour")


def test_avazu_x4_derived_reused_and_skip_mode(tmp_path: Path) -> None:
    rows = avazu_rows(6)
    rows[2] = ",".join(rows[2].split(",")[:-2])  # too few fields
    write_avazu_split(tmp_path / "src", valid_rows=rows)
    ds = get_dataset("avazu_x4")
    with pytest.raises(DataError) as e:
        ds.data_spec(tmp_path / "src", work_dir=tmp_path / "work")
    assert e.value.line == 4
    spec = ds.data_spec(tmp_path / "src", work_dir=tmp_path / "work", on_bad_rows="skip")
    assert ds.dropped == {"train": 0, "valid": 1, "test": 0}  # type: ignore[attr-defined]
    rej = pl.read_csv(tmp_path / "work" / "derived" / "rejects" / "valid.csv")
    assert rej["line"].to_list() == [4]
    assert pl.read_parquet(spec.sources["valid"].path).height == 5
    mtime = spec.sources["train"].path.stat().st_mtime_ns
    spec2 = get_dataset("avazu_x4").data_spec(tmp_path / "src", work_dir=tmp_path / "work", on_bad_rows="skip")
    assert spec2.sources["train"].path.stat().st_mtime_ns == mtime  # derived file reused


# ====================================================================== KKBox_x1 derived columns
def test_kkbox_x1_country_code_and_age_bucket(tmp_path: Path) -> None:
    head = "label,msno,song_id,source_system_tab,source_screen_name,source_type,city,bd,gender,registered_via,song_length,genre_ids,artist_name,language,isrc"
    ages = ["0", "10", "11", "25", "60", "61", "95", "96", "", "abc"]
    want = ["", "1", "2", "3", "6", "7", "7", "", "", ""]
    rows = []
    for i in range(40):
        isrc = ["TWA530887303", "USUM71703861", ""][i % 3]
        rows.append(f"{i % 2},m{i % 3},s{i % 4},tab,screen,type,1,{ages[i % 10]},female,7,1000,465 958,Jay Chou,3,{isrc}")
    d = tmp_path / "src"
    d.mkdir()
    for split in ("train", "valid", "test"):
        (d / f"{split}.csv").write_text(head + "\n" + "\n".join(rows) + "\n")
    ds = KKBoxX1()
    spec = ds.data_spec(d, work_dir=tmp_path / "work")
    derived = pl.read_parquet(spec.sources["train"].path)
    assert derived["bd"].to_list() == [want[i % 10] for i in range(40)]
    assert derived["isrc"].to_list() == [["TW", "US", ""][i % 3] for i in range(40)]
    store = build_store(spec, tmp_path / "store", progress=False)
    vocab = store.encoders.vocabs
    assert vocab["isrc"].values == ["", "TW", "US"] or set(vocab["isrc"].values) == {"", "TW", "US"}
    assert set(vocab["bd"].values) == {""}  # each age bucket except "" has < 10 rows
    assert set(vocab["genre_ids"].values) == {"465", "958"}  # space-separated tokens
    seq = store.arrays("train").seq_offsets["artist_name"]
    assert np.diff(seq).tolist() == [2] * 40  # "Jay Chou" -> 2 tokens


# ====================================================================== generic
GENERIC_SCHEMA = """\
features:
  - {name: a, kind: categorical}
  - {name: x, kind: numeric, normalizer: standard}
tasks:
  - {name: click, column: y}
"""


def test_generic_explicit_files(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GENERIC_SCHEMA)
    (tmp_path / "tr.tsv").write_text("a\tx\ty\nu\t1\t1\nv\t2\t0\n")
    (tmp_path / "va.tsv").write_text("a\tx\ty\nw\t3\t1\n")
    ds = get_dataset("generic", train=tmp_path / "tr.tsv", valid=tmp_path / "va.tsv", schema=tmp_path / "s.yaml", name="mine")
    spec = ds.data_spec()
    assert spec.name == "mine" and set(spec.sources) == {"train", "valid"}
    store = build_store(spec, tmp_path / "store", progress=False)
    assert store.rows("valid") == 1 and store.manifest["splits"]["valid"]["oov"] == {"a": 1}


def test_generic_source_directory(tmp_path: Path) -> None:
    d = tmp_path / "mydata"
    d.mkdir()
    (d / "schema.yaml").write_text(GENERIC_SCHEMA)
    for split, text in (("train", "a,x,y\nu,1,1\nv,2,0\n"), ("valid", "a,x,y\nu,1,1\n"), ("test", "a,x,y\nv,0,0\n")):
        (d / f"{split}.csv").write_text(text)
    spec = get_dataset("generic").data_spec(d)
    assert spec.name == "mydata" and set(spec.sources) == {"train", "valid", "test"}
    assert build_store(spec, tmp_path / "store", progress=False).rows("test") == 1


def test_generic_headerless_with_columns(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(GENERIC_SCHEMA)
    (tmp_path / "train.txt").write_text("u\t1\t1\nv\t2\t0\n")
    ds = get_dataset("generic", train=tmp_path / "train.txt", schema=tmp_path / "s.yaml", header=False, columns=["a", "x", "y"])
    assert build_store(ds.data_spec(), tmp_path / "store", progress=False).rows("train") == 2


def test_generic_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no train file"):
        get_dataset("generic").data_spec(tmp_path)
    (tmp_path / "train.csv").write_text("a,x,y\nu,1,1\n")
    with pytest.raises(ConfigError, match="schema"):
        get_dataset("generic").data_spec(tmp_path)
    (tmp_path / "schema.yaml").write_text(GENERIC_SCHEMA.replace("normalizer", "normaliser"))
    with pytest.raises(ConfigError) as e:
        get_dataset("generic").data_spec(tmp_path)
    assert e.value.key == "features.1.normaliser" and str(tmp_path / "schema.yaml") in str(e.value)


def test_generic_reads_a_synthetic_directory(tmp_path: Path) -> None:
    synthetic = pytest.importorskip("ctrkit.data.synthetic")
    res = synthetic.synthesize(tmp_path / "syn", synthetic.SynthConfig(rows=2_000, seed=3))
    spec = get_dataset("generic").data_spec(res.out_dir)
    store = build_store(spec, tmp_path / "store", progress=False)
    assert {s: store.rows(s) for s in store.splits} == res.rows


# ====================================================================== downloads
def test_download_file_checks_and_is_atomic(tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    src = tmp_path / "remote.bin"
    src.write_bytes(payload)
    good = hashlib.md5(payload, usedforsecurity=False).hexdigest()
    dest = tmp_path / "out" / "file.bin"
    assert download_file(src.as_uri(), dest, md5=good, sha256=hashlib.sha256(payload).hexdigest(), progress=False) == dest
    assert dest.read_bytes() == payload

    bad_dest = tmp_path / "out" / "bad.bin"
    with pytest.raises(DataError) as e:
        download_file(src.as_uri(), bad_dest, md5="0" * 32, progress=False)
    assert "md5 mismatch" in str(e.value) and good in str(e.value)
    assert not bad_dest.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["file.bin"]  # no .part left

    dest.write_bytes(b"old")  # a failed re-download leaves the old file untouched
    with pytest.raises(DataError):
        download_file(src.as_uri(), dest, md5="1" * 32, progress=False)
    assert dest.read_bytes() == b"old"


class Tiny(DatasetAdapter):
    name = "tiny"
    title = "Tiny_x1"

    def __init__(self, sums: dict[str, str]):
        self.files = tuple(FileSpec(s, f"{s}.csv", md5=sums[s]) for s in ("train", "valid", "test"))
        self.urls = ("file:///nonexistent/Tiny_x1.zip",)

    def schema(self):
        return make_schema([{"name": "a", "kind": "categorical"}], label="y")


def tiny_zip(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    texts = {"train": "a,y\nu,1\nv,0\n", "valid": "a,y\nu,0\n", "test": "a,y\nv,1\n"}
    archive = tmp_path / "Tiny_x1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for s, t in texts.items():
            zf.writestr(f"Tiny_x1/{s}.csv", t)
        zf.writestr("Tiny_x1/README.md", "x")
    return archive, {s: hashlib.md5(t.encode(), usedforsecurity=False).hexdigest() for s, t in texts.items()}


def test_fetch_dataset_from_url_and_local_sources(tmp_path: Path) -> None:
    archive, sums = tiny_zip(tmp_path)
    ds = Tiny(sums)
    out = tmp_path / "out"
    with pytest.raises(DataError, match="every download location failed"):
        fetch_dataset(ds, out, progress=False)  # the built-in (here: missing) location
    paths = fetch_dataset(ds, out, urls=(archive.as_uri(),), progress=False)
    assert {s: md5(p) for s, p in paths.items()} == sums
    assert sorted(p.name for p in out.iterdir()) == ["test.csv", "train.csv", "valid.csv"]
    assert fetch_dataset(ds, out, progress=False) == paths  # present and valid: kept
    # a local archive or directory instead of the network
    assert fetch_dataset(ds, tmp_path / "out2", source=archive, progress=False)["valid"].read_text() == "a,y\nu,0\n"
    assert md5(fetch_dataset(ds, tmp_path / "out3", source=out, progress=False)["train"]) == sums["train"]
    assert build_store(ds.data_spec(out), tmp_path / "store", progress=False).rows("train") == 2


def test_fetch_dataset_bad_checksum_installs_nothing(tmp_path: Path) -> None:
    archive, sums = tiny_zip(tmp_path)
    ds = Tiny({**sums, "test": "f" * 32})
    out = tmp_path / "out"
    with pytest.raises(DataError, match="md5 mismatch"):
        fetch_dataset(ds, out, urls=(archive.as_uri(),), progress=False)
    assert list(out.iterdir()) == []
    files = fetch_dataset(ds, out, urls=(archive.as_uri(),), verify=False, progress=False)
    assert set(files) == {"train", "valid", "test"}

"""Readers: CSV/TSV with and without header, CRLF, Parquet, libsvm; and bad input, which must
raise a DataError naming the file, the line and the column."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ctrkit.data import DataSpec, build_store, source_file
from ctrkit.data.readers import check_structure, header_columns, infer_format, scan
from ctrkit.errors import DataError
from ctrkit.schema import FeatureSchema

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
FRAPPE = SHARED / "frappe_x1"
FRAPPE_COLS = ["label", "user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city"]

SCHEMA = FeatureSchema.from_dict(
    {
        "features": [{"name": "a", "kind": "categorical"}, {"name": "x", "kind": "numeric"}],
        "tasks": [{"name": "click", "column": "y"}],
    }
)
ROWS = [("u", "3.5", "1"), ("v", "4", "0"), ("u", "", "1")]


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def table(rows: list[tuple[str, ...]], sep: str = ",", header: tuple[str, ...] | None = ("a", "x", "y"), eol: str = "\n") -> str:
    lines = ([sep.join(header)] if header else []) + [sep.join(r) for r in rows]
    return eol.join(lines) + eol


def read_all(src, cols=("a", "x", "y")) -> pl.DataFrame:
    return scan(src, list(cols)).collect()


# ---------------------------------------------------------------------- formats
def test_infer_format() -> None:
    assert infer_format("a/train.csv") == "csv"
    assert infer_format("train.tsv") == "tsv"
    assert infer_format("train.txt") == "tsv"
    assert infer_format("t.parquet") == "parquet"
    assert infer_format("t.libsvm") == "libsvm"
    with pytest.raises(DataError, match="format"):
        infer_format("t.json")


@pytest.mark.parametrize("sep,ext", [(",", "csv"), ("\t", "tsv")])
def test_csv_tsv_with_header(tmp_path: Path, sep: str, ext: str) -> None:
    src = source_file(write(tmp_path / f"t.{ext}", table(ROWS, sep)))
    df = read_all(src)
    assert df["a"].to_list() == ["u", "v", "u"]
    assert df["x"].to_list() == ["3.5", "4", None]  # everything is text; a missing cell is null
    assert df["__line"].to_list() == [2, 3, 4]  # line numbers count the header


@pytest.mark.parametrize("sep,ext", [(",", "csv"), ("\t", "tsv")])
def test_csv_tsv_without_header(tmp_path: Path, sep: str, ext: str) -> None:
    p = write(tmp_path / f"t.{ext}", table(ROWS, sep, header=None))
    src = source_file(p, header=False, columns=["a", "x", "y"])
    df = read_all(src)
    assert df["y"].to_list() == ["1", "0", "1"]
    assert df["__line"].to_list() == [1, 2, 3]
    with pytest.raises(DataError, match="columns"):
        header_columns(source_file(p, header=False))


@pytest.mark.parametrize("last", ["y", "x", "a"])
def test_crlf_line_endings(tmp_path: Path, last: str) -> None:
    order = [c for c in ("a", "x", "y") if c != last] + [last]
    rows = [tuple(dict(zip(("a", "x", "y"), r))[c] for c in order) for r in ROWS]
    src = source_file(write(tmp_path / "t.csv", table(rows, header=tuple(order), eol="\r\n")))
    df = read_all(src)
    assert df["a"].to_list() == ["u", "v", "u"]
    assert df["y"].to_list() == ["1", "0", "1"]
    assert not any("\r" in (v or "") for c in ("a", "x", "y") for v in df[c].to_list())
    store = build_store(DataSpec(SCHEMA, {"train": src}), tmp_path / "store", progress=False)
    assert store.arrays("train").labels[:, 0].tolist() == [1.0, 0.0, 1.0]


def test_parquet(tmp_path: Path) -> None:
    p = tmp_path / "t.parquet"
    pl.DataFrame({"a": ["u", "v", None], "x": [3.5, 4.0, None], "y": [1, 0, 1]}).write_parquet(p)
    src = source_file(p)
    assert src.format == "parquet" and not src.header
    df = read_all(src)
    assert df["__line"].to_list() == [1, 2, 3]
    store = build_store(DataSpec(SCHEMA, {"train": src}), tmp_path / "store", progress=False)
    arr = store.arrays("train")
    assert arr.dense[:, 0].tolist() == [3.5, 4.0, 0.0]  # missing -> fill_value 0
    assert arr.labels[:, 0].tolist() == [1.0, 0.0, 1.0]


def test_libsvm_tiny(tmp_path: Path) -> None:
    p = write(tmp_path / "t.libsvm", "1 10:1 20:1\n0 11:1 20:1\n-1 10:1 21:1\n")
    src = source_file(p, columns=["y", "a", "b"])
    assert src.format == "libsvm"
    df = scan(src, ["y", "a", "b"]).collect()
    assert df["a"].to_list() == ["10", "11", "10"] and df["b"].to_list() == ["20", "20", "21"]
    schema = FeatureSchema.from_dict(
        {"features": [{"name": "a", "kind": "categorical"}, {"name": "b", "kind": "categorical"}],
         "tasks": [{"name": "click", "column": "y"}]}  # fmt: skip
    )
    store = build_store(DataSpec(schema, {"train": src}), tmp_path / "store", progress=False)
    assert store.arrays("train").labels[:, 0].tolist() == [1.0, 0.0, 0.0]  # NFM's -1 is a negative


def test_libsvm_wrong_token_count(tmp_path: Path) -> None:
    p = write(tmp_path / "t.libsvm", "1 10:1 20:1\n0 11:1\n")
    rep = check_structure(source_file(p, columns=["y", "a", "b"]))
    assert rep.bad_lines == [2] and rep.bad_counts == [2]


@pytest.mark.skipif(not (FRAPPE / "libsvm" / "valid.libsvm").exists(), reason="shared Frappe data not present")
def test_libsvm_frappe_matches_csv() -> None:
    src = source_file(FRAPPE / "libsvm" / "valid.libsvm", columns=FRAPPE_COLS)
    assert check_structure(src).bad_lines == []
    lib = scan(src, FRAPPE_COLS).collect()
    csv = pl.read_csv(FRAPPE / "valid.csv", infer_schema=False)
    assert lib.height == csv.height == 57_722
    assert lib.select(FRAPPE_COLS).equals(csv.select(FRAPPE_COLS))


def test_header_mismatch_with_declared_columns(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", table(ROWS))
    with pytest.raises(DataError) as e:
        header_columns(source_file(p, columns=["a", "x", "z"]))
    assert e.value.line == 1


# ---------------------------------------------------------------------- bad input
def build(tmp_path: Path, text: str | bytes, name: str = "t.csv", **read) -> None:
    src = source_file(write(tmp_path / name, text), **read)
    build_store(DataSpec(SCHEMA, {"train": src}), tmp_path / "store", progress=False)


def test_too_many_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        build(tmp_path, "a,x,y\nu,3.5,1\nv,4,0,9\n")
    assert e.value.file == str(tmp_path / "t.csv") and e.value.line == 3
    assert "4 fields, expected 3" in str(e.value) and "line 3" in str(e.value)


def test_too_few_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        build(tmp_path, "a,x,y\nu,3.5,1\nv,4\n")
    assert e.value.line == 3 and "2 fields, expected 3" in str(e.value)


def test_too_few_columns_headerless_tsv(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        build(tmp_path, "u\t3.5\t1\nv\t4\n", name="t.tsv", header=False, columns=["a", "x", "y"])
    assert e.value.line == 2


def test_blank_line_is_a_malformed_row(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        build(tmp_path, "a,x,y\nu,3.5,1\n\nv,4,0\n")
    assert e.value.line == 3 and "0 fields" in str(e.value)


def test_text_in_numeric_column(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        build(tmp_path, "a,x,y\nu,3.5,1\nv,abc,0\n")
    assert (e.value.line, e.value.column) == (3, "x")
    assert "t.csv" in str(e.value) and "line 3" in str(e.value) and "column 'x'" in str(e.value) and "abc" in str(e.value)


def test_unparsable_label(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        build(tmp_path, "a,x,y\nu,3.5,1\nv,4,yes\n")
    assert (e.value.line, e.value.column) == (3, "y") and "yes" in str(e.value)


def test_missing_label(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        build(tmp_path, "a,x,y\nu,3.5,\nv,4,0\n")
    assert (e.value.line, e.value.column) == (2, "y")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        build(tmp_path, b"")
    assert e.value.file == str(tmp_path / "t.csv") and e.value.line == 1 and "empty" in str(e.value)


def test_schema_column_absent_from_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        build(tmp_path, "a,y\nu,1\nv,0\n")
    assert (e.value.line, e.value.column) == (1, "x")
    assert "absent" in str(e.value) and "t.csv" in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        scan(source_file(tmp_path / "nope.csv"), ["a"])
    assert e.value.file == str(tmp_path / "nope.csv")


def test_errors_in_valid_split_name_that_file(tmp_path: Path) -> None:
    train = source_file(write(tmp_path / "train.csv", table(ROWS)))
    valid = source_file(write(tmp_path / "valid.csv", "a,x,y\nu,1,1\nu,2,1\nw,x9,0\n"))
    with pytest.raises(DataError) as e:
        build_store(DataSpec(SCHEMA, {"train": train, "valid": valid}), tmp_path / "store", progress=False)
    assert e.value.file == str(tmp_path / "valid.csv") and (e.value.line, e.value.column) == (4, "x")

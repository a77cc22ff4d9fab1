"""Reading raw files (CSV/TSV with or without header, CRLF or LF, Parquet, libsvm) with Polars.

Every reader returns a lazy frame of the columns a schema needs, all as strings except Parquet's
native numeric types, plus a ``__line`` column holding each row's 1-based line number in the file
(header included) so any later error can name the line. :func:`check_structure` finds rows with
the wrong number of fields (Polars silently fills short rows with nulls).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from ctrkit.errors import DataError

Format = Literal["csv", "tsv", "parquet", "libsvm"]
LINE = "__line"
_RAW = "__raw"


@dataclass(frozen=True)
class SourceFile:
    """How to read one raw file.

    ``columns`` names the columns of a header-less file (for libsvm: the label name followed by
    one name per positional field). ``separator`` defaults to ',' for csv, tab for tsv, space for
    libsvm.
    """

    path: Path
    format: Format
    header: bool = True
    columns: tuple[str, ...] | None = None
    separator: str | None = None

    @property
    def sep(self) -> str:
        if self.separator is not None:
            return self.separator
        return {"csv": ",", "tsv": "\t", "libsvm": " ", "parquet": ","}[self.format]


def infer_format(path: str | Path) -> Format:
    """Format from the file name: .csv, .tsv/.txt, .parquet/.pq, .libsvm/.svm/.libfm."""
    name = Path(path).name.lower()
    for suffix, fmt in (
        (".csv", "csv"),
        (".tsv", "tsv"),
        (".txt", "tsv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".libsvm", "libsvm"),
        (".svm", "libsvm"),
        (".libfm", "libsvm"),
    ):
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return fmt  # type: ignore[return-value]
    raise DataError("cannot tell the format from the file name; set 'format'", file=path)


def source_file(
    path: str | Path,
    *,
    format: Format | None = None,
    header: bool = True,
    columns: list[str] | tuple[str, ...] | None = None,
    separator: str | None = None,
) -> SourceFile:
    p = Path(path)
    fmt = format or infer_format(p)
    return SourceFile(p, fmt, header if fmt in ("csv", "tsv") else False, tuple(columns) if columns else None, separator)


def _check_exists(src: SourceFile) -> None:
    if not src.path.exists():
        raise DataError("file does not exist", file=src.path)
    if src.path.stat().st_size == 0:
        raise DataError("file is empty", file=src.path, line=1)


def header_columns(src: SourceFile) -> list[str]:
    """Column names of a file: its header, or ``src.columns``."""
    _check_exists(src)
    if src.format == "parquet":
        return list(pl.read_parquet_schema(src.path).keys())
    if src.format == "libsvm" or not src.header:
        if src.columns is None:
            raise DataError("file has no header: give 'columns' (the name of every column)", file=src.path)
        return list(src.columns)
    with open(src.path, "rb") as fh:
        first = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    if not first:
        raise DataError("file is empty (no header line)", file=src.path, line=1)
    names = [c.strip().strip('"') for c in first.split(src.sep)]
    if src.columns is not None and list(src.columns) != names:
        raise DataError(f"header {names} differs from the declared columns {list(src.columns)}", file=src.path, line=1)
    return names


def scan(src: SourceFile, needed: list[str]) -> pl.LazyFrame:
    """Lazy frame with the ``needed`` columns (strings for text formats) and ``__line``.

    Raises :class:`DataError` naming the file and column when a needed column is absent.
    """
    _check_exists(src)
    names = header_columns(src)
    missing = [c for c in needed if c not in names]
    if missing:
        raise DataError(
            f"column(s) named in the schema are absent from the file (it has {names})",
            file=src.path,
            line=1 if src.header else None,
            column=missing[0],
        )
    first_line = 2 if src.header else 1
    if src.format == "parquet":
        lf = pl.scan_parquet(src.path).select(needed)
        return lf.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))
    if src.format == "libsvm":
        return _scan_libsvm(src, names).select([LINE, *needed])
    lf = pl.scan_csv(
        src.path,
        separator=src.sep,
        has_header=src.header,
        new_columns=None if src.header else names,
        infer_schema=False,  # everything as text: types are the schema's business, with errors
        raise_if_empty=True,
        # Row lengths are checked by check_structure() first; over-long rows it let through (the
        # skip-bad-rows mode) are filtered out by line number afterwards.
        truncate_ragged_lines=True,
    )
    return (
        lf.select(needed)
        .with_row_index(LINE, offset=first_line)
        .with_columns(pl.col(LINE).cast(pl.Int64), *[_strip_cr(c) for c in needed[-1:]])
    )


def _strip_cr(col: str) -> pl.Expr:
    # Polars handles CRLF line ends, but strip a stray '\r' left on the last field to be safe.
    return pl.col(col).str.strip_chars_end("\r")


def _scan_libsvm(src: SourceFile, names: list[str]) -> pl.LazyFrame:
    """libsvm/libfm lines 'label idx:val idx:val ...' -> label plus one column per position
    holding the index token (the value part is kept in '<name>_value' columns)."""
    lines = pl.scan_csv(
        src.path, separator="\x1f", has_header=False, new_columns=[_RAW], quote_char=None, infer_schema=False
    )
    parts = pl.col(_RAW).str.strip_chars().str.split(src.sep)
    exprs = [parts.list.get(0, null_on_oob=True).alias(names[0])]
    for i, n in enumerate(names[1:], start=1):
        tok = parts.list.get(i, null_on_oob=True)
        exprs.append(tok.str.split_exact(":", 1).struct.field("field_0").alias(n))
    return lines.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64)).select([LINE, *exprs])


@dataclass
class StructureReport:
    """Rows whose field count differs from the header's."""

    expected: int
    bad_lines: list[int] = field(default_factory=list)
    bad_counts: list[int] = field(default_factory=list)


def check_structure(src: SourceFile, max_report: int | None = 1000) -> StructureReport:
    """Count fields on every line (vectorised) and report lines whose count is wrong
    (the first ``max_report`` of them; all of them when it is None).

    Quoted separators are not understood here; files that quote fields containing the separator
    skip this check (Polars' own parser then reports over-long rows).
    """
    names = header_columns(src)
    expected = len(names)
    rep = StructureReport(expected)
    if src.format in ("parquet",):
        return rep
    if src.format in ("csv", "tsv") and _all_lines_have(src, expected):
        return rep  # the common case, proven by a cheap byte scan; anything else is reported below
    lines = pl.scan_csv(
        src.path, separator="\x1f", has_header=False, new_columns=[_RAW], quote_char=None, infer_schema=False
    ).with_row_index(LINE, offset=1)
    # A blank line reads as a null raw line: it has 0 fields (not "no count", which the filter
    # below would silently let through as an all-null row).
    if src.format == "libsvm":
        # Fields are positional: every line must have the label plus one token per named field.
        counts = (pl.col(_RAW).str.strip_chars().str.count_matches(src.sep, literal=True) + 1).fill_null(0)
        bad = lines.with_columns(n=counts).filter(pl.col("n") != expected)
    else:
        if src.header:
            lines = lines.filter(pl.col(LINE) > 1)
        has_quote = lines.select(pl.col(_RAW).str.contains('"', literal=True).any()).collect().item()
        if has_quote:
            return rep
        counts = (pl.col(_RAW).str.count_matches(src.sep, literal=True) + 1).fill_null(0)
        bad = lines.with_columns(n=counts).filter(pl.col("n") != expected)
    found = bad.select(LINE, "n")
    if max_report is not None:  # (no huge head(): Polars' 32-bit row index overflows)
        found = found.head(max_report)
    found = found.collect()
    rep.bad_lines = [int(x) for x in found[LINE]]
    rep.bad_counts = [int(x) for x in found["n"]]
    return rep


#: Bytes scanned at a time by :func:`_all_lines_have` (plus the rest of the last line).
_SCAN_CHUNK = 32 << 20


def _all_lines_have(src: SourceFile, expected: int) -> bool:
    """True when every data line of an unquoted text file provably has ``expected`` fields:
    a byte scan (numpy over a memory map) that counts separators per newline-terminated line.

    It only ever answers True for files the line-based check below would find clean: False
    (anything unusual: quotes, the 0x1f byte that check splits on, compression, empty lines,
    any line with another count, a one-column file) sends the caller to the full check, which
    finds and reports the bad lines exactly as before.
    """
    sep = src.sep
    if expected < 2 or len(sep) != 1 or sep in '\r\n"\x1f' or not sep.isascii():
        return False
    if src.path.name.lower().endswith((".gz", ".zst", ".zip", ".bz2", ".xz")):
        return False
    size = src.path.stat().st_size
    with open(src.path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        start = 0
        if src.header:
            start = mm.find(b"\n") + 1
            if start == 0:
                return False  # a header without a newline
        if mm.find(b'"', start) >= 0 or mm.find(b"\x1f") >= 0:
            return False
        buf = np.frombuffer(mm, dtype=np.uint8)
        try:
            return _lines_have(buf, start, size, ord(sep), expected - 1)
        finally:
            del buf  # (the memory map cannot close while an array views it)


def _lines_have(buf: np.ndarray, pos: int, size: int, sep: int, seps: int) -> bool:
    """Every line in ``buf[pos:size]`` has exactly ``seps`` separators (and is not empty)."""
    while pos < size:
        end = min(size, pos + _SCAN_CHUNK)
        ends = np.flatnonzero(buf[pos:end] == 10)
        while ends.size == 0 and end < size:  # a line longer than the chunk: take more
            end = min(size, end + _SCAN_CHUNK)
            ends = np.flatnonzero(buf[pos:end] == 10)
        if end < size:
            end = pos + int(ends[-1]) + 1  # up to the last complete line
        elif ends.size == 0 or ends[-1] != end - pos - 1:
            ends = np.append(ends, end - pos)  # the last line has no newline
        at = np.flatnonzero(buf[pos:end] == sep)
        n = ends.size
        # Line i must hold separators i*seps .. i*seps+seps-1, all after the previous line's end
        # and before its own: with the total count right, that pins every line's count exactly.
        if at.size != n * seps:
            return False
        first, last = at[::seps], at[seps - 1 :: seps]
        if (last >= ends).any() or (first[1:] <= ends[:-1]).any():
            return False
        pos = end
    return True


def bad_line_set(src: SourceFile) -> tuple[StructureReport, pl.DataFrame]:
    """All malformed lines (line number, field count, raw text) for a rejects file."""
    rep = check_structure(src, max_report=None)
    if not rep.bad_lines:
        return rep, pl.DataFrame({LINE: [], "raw": []}, schema={LINE: pl.Int64, "raw": pl.String})
    lines = pl.scan_csv(
        src.path, separator="\x1f", has_header=False, new_columns=[_RAW], quote_char=None, infer_schema=False
    ).with_row_index(LINE, offset=1)
    raw = lines.filter(pl.col(LINE).is_in(rep.bad_lines)).select(pl.col(LINE).cast(pl.Int64), pl.col(_RAW).alias("raw")).collect()
    return rep, raw

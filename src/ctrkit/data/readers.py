"""Reading raw files (CSV/TSV with or without header, CRLF or LF, Parquet, libsvm) with Polars.

Every reader returns a lazy frame of the columns a schema needs, all as strings except Parquet's
native numeric types, plus a ``__line`` column holding each row's 1-based line number in the file
(header included) so any later error can name the line. :func:`check_structure` finds rows with
the wrong number of fields (Polars silently fills short rows with nulls).

The fast path for plain CSV/TSV (:func:`read_typed`) parses numeric columns as numbers in one
multi-threaded read; :func:`scan_bytes` (one pass over the bytes, also giving the content hash)
and Polars' own ragged-row check together prove the structure, so the slower line-by-line check
only runs when that proof fails. Anything the fast path cannot handle returns None, and the
caller takes the string path above, which produces the exact error messages.
"""

from __future__ import annotations

import csv
import hashlib
import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

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
        # (utf-8-sig: a byte order mark, as spreadsheet exports write, is not part of a name)
        first = fh.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not first:
        raise DataError("file is empty (no header line)", file=src.path, line=1)
    if "\r" in first:
        raise DataError(
            "lines end with a lone carriage return ('\\r', old Mac style); ctrkit reads LF or CRLF line ends",
            file=src.path,
            line=1,
        )
    names = [c.strip().strip('"') for c in first.split(src.sep)]
    if src.columns is not None and list(src.columns) != names:
        raise DataError(f"header {names} differs from the declared columns {list(src.columns)}", file=src.path, line=1)
    return names


def named_once(names: list[str], needed: list[str]) -> bool:
    """Whether the header names every needed column exactly once. The fast readers take only
    such files; :func:`scan` reports an absent or repeated column with the file and column."""
    return all(names.count(c) == 1 for c in needed)


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
    twice = [c for c in needed if names.count(c) > 1]
    if twice:
        raise DataError("the header names this column more than once: which one is meant is unclear",
                        file=src.path, line=1 if src.header else None, column=twice[0])  # fmt: skip
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
        new_columns=_unique(names),  # (the header as header_columns() reads it: names stripped)
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


def _unique(names: list[str]) -> list[str]:
    """Column names for Polars: a repeated name (of a column nobody reads; a read one is an
    error in :func:`scan`) gets a suffix, as Polars would give it."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_duplicated_{k - 1}")
    return out


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

    A file with a '"' in it is read record by record with Python's ``csv`` module instead, which
    understands quoted separators (slower, and only for such files); a record is reported at the
    line it starts on.
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
            return _check_quoted(src, rep, max_report)
        counts = (pl.col(_RAW).str.count_matches(src.sep, literal=True) + 1).fill_null(0)
        bad = lines.with_columns(n=counts).filter(pl.col("n") != expected)
    found = bad.select(LINE, "n")
    if max_report is not None:  # (no huge head(): Polars' 32-bit row index overflows)
        found = found.head(max_report)
    found = found.collect()
    rep.bad_lines = [int(x) for x in found[LINE]]
    rep.bad_counts = [int(x) for x in found["n"]]
    return rep


def _check_quoted(src: SourceFile, rep: StructureReport, max_report: int | None) -> StructureReport:
    """:func:`check_structure` for a file with quotes: field counts per record, as the csv
    module parses them (a separator or newline inside quotes belongs to the field)."""
    with open(src.path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=src.sep, quotechar='"', doublequote=True, strict=False)
        start = 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if src.header and line == 1:
                continue
            if len(row) != rep.expected:
                rep.bad_lines.append(line)
                rep.bad_counts.append(len(row))
                if max_report is not None and len(rep.bad_lines) >= max_report:
                    break
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


# ============================================================================ fast path
#: Bytes hashed and counted at a time by :func:`scan_bytes`: small enough to stay in cache
#: between the hash and the two counts.
_FACT_CHUNK = 4 << 20
#: Suffixes of files Polars would decompress: their bytes are not the text's bytes.
_COMPRESSED = (".gz", ".zst", ".zip", ".bz2", ".xz")


@dataclass(frozen=True)
class ByteScan:
    """What one pass over a file's bytes tells: its content hash and, for text files, the counts
    that prove every line has the header's number of fields (see :func:`structure_proven`)."""

    size: int
    digest: str | None  # sha256 hex of the content (None when not asked for)
    separators: int = -1  # bytes equal to the separator (-1: not counted)
    newlines: int = -1
    ends_with_newline: bool = True
    has_quote: bool = True  # a '"' anywhere: fields may hide separators or newlines


def scan_bytes(path: Path, sep: str | None, *, digest: bool = True) -> ByteScan:
    """sha256 of the file (when ``digest``) and, when ``sep`` is a single ASCII byte, counts of
    separators and newlines, in one pass over a memory map. Runs in a background thread: hashlib
    and numpy release the GIL on every chunk."""
    size = path.stat().st_size
    h = hashlib.sha256() if digest else None
    count = sep is not None and len(sep) == 1 and sep.isascii() and sep not in "\r\n\""
    if count and path.name.lower().endswith(_COMPRESSED):
        count = False
    if size == 0:
        return ByteScan(0, h.hexdigest() if h else None)
    seps = lines = 0
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            for pos in range(0, size, _FACT_CHUNK):
                chunk = view[pos : pos + _FACT_CHUNK]
                if h is not None:
                    h.update(chunk)
                if count:
                    a = np.frombuffer(chunk, dtype=np.uint8)
                    seps += int(np.count_nonzero(a == ord(sep)))  # type: ignore[arg-type]
                    lines += int(np.count_nonzero(a == 10))
                    del a
                chunk.release()
            has_quote = mm.find(b'"') >= 0 if count else True  # (memchr: ~10 GB/s)
            ends = mm[size - 1 : size] == b"\n"
        finally:
            view.release()
    if not count:
        return ByteScan(size, h.hexdigest() if h else None)
    return ByteScan(size, h.hexdigest() if h else None, seps, lines, ends, has_quote)


def _has_byte(path: Path, byte: bytes) -> bool:
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return mm.find(byte) >= 0


def structure_proven(src: SourceFile, facts: ByteScan, rows: int, fields: int) -> bool:
    """True when every line of an unquoted text file has ``fields`` fields, given that Polars read
    all its columns without a ragged-row error (so no line has more) and produced ``rows`` rows.

    Every line holds at most ``fields - 1`` separators; if their total is exactly
    ``lines * (fields - 1)``, no line can hold fewer. The line count must match the row count, so
    no line (a blank one, say) went unread. False sends the caller to :func:`check_structure`.
    """
    if facts.separators < 0 or facts.has_quote or fields < 2:
        return False
    lines = rows + (1 if src.header else 0)
    newline_lines = facts.newlines + (0 if facts.ends_with_newline else 1)
    return newline_lines == lines and facts.separators == lines * (fields - 1)


def read_typed(
    src: SourceFile, needed: list[str], dtypes: Mapping[str, pl.DataType], *, all_columns: bool
) -> pl.DataFrame | None:
    """The ``needed`` columns of a plain CSV/TSV in one multi-threaded parse, each column in
    ``dtypes`` parsed as that type and every other one as strings, plus ``__line``; None when the
    file is not a plain text file or any value fails to parse (a numeric column holding text, a
    row with too many fields): the caller then takes the string path, which names the file, line
    and column of the problem.

    With ``all_columns`` every column of the file is parsed (unneeded ones as strings, then
    dropped) so that Polars rejects over-long rows, which :func:`structure_proven` relies on.
    """
    if src.format not in ("csv", "tsv") or src.path.name.lower().endswith(_COMPRESSED):
        return None
    _check_exists(src)
    names = header_columns(src)
    if not named_once(names, needed):
        return None
    names = _unique(names)  # (a repeated name nobody reads is renamed, as in scan())
    types = {c: dtypes.get(c, pl.String) for c in names}
    try:
        df = pl.read_csv(
            src.path,
            separator=src.sep,
            has_header=src.header,
            new_columns=names,  # (the header as header_columns() reads it: names stripped)
            columns=None if all_columns else needed,
            schema_overrides=types,
            # Without a quote in the file, quote handling is only cost (memchr finds one fast).
            quote_char='"' if _has_byte(src.path, b'"') else None,
            raise_if_empty=True,
            truncate_ragged_lines=False,
        ).select(needed)  # (names Polars reads differently from header_columns() fail here too)
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return None
    if df[needed[-1]].dtype == pl.String:
        df = df.with_columns(_strip_cr(needed[-1]))  # as scan() does
    first_line = 2 if src.header else 1
    return df.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))


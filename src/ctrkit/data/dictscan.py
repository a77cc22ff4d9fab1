"""The native reader: plain CSV/TSV files to a store through their distinct values.

A CTR log repeats a small set of values in every column millions of times. The C extension
:mod:`ctrkit.data._dictscan` reads each file once and dictionary-encodes the schema's columns
(one hash table of raw values per column): each row becomes one int32 code per column, each
column a table of distinct raw strings with their counts per split. The files are cut at line
boundaries into pieces that threads scan with tables of their own, merged afterwards.
Everything else runs on the distinct values with the same Polars expressions as the general
reader. That covers checks, tokens, the vocabulary fit (:meth:`Encoders.fit_counted`), ids,
numeric values and labels. Each distinct value is evaluated once, and the store's arrays are
gathered from those lookup tables in one pass over the codes.

The result is the store the Polars reader writes, byte for byte (a test builds both), but for
the last bit of a standard/min-max normalizer's mean and deviation: Polars' own sums depend on
how its CSV reader chunked the column, while here they run on one contiguous train column in file
order. This path applies only where that holds by construction. Anything outside it returns
None and the caller takes the Polars reader, which also names the file, line and column of any
bad value:

* every split a plain (uncompressed) CSV/TSV with a one-byte separator, error mode for bad rows;
* any schema. Normalizer statistics and quantile edges are computed by the same Polars
  expressions on the train column, gathered in file order; a sequence is encoded once per
  distinct value, and its rows gathered from those lists;
* no line the scan does not accept: a wrong field count, a blank line, a '"' anywhere;
* no value the checks reject, and every numeric value a plain decimal number (``-12``,
  ``3.5``, ``1e-3``), whose parse is the same everywhere.

``CTRKIT_NATIVE_READER=0`` in the environment turns it off. The store's manifest says which
reader wrote it (``"reader"``).
"""

from __future__ import annotations

import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pyarrow as pa

from ctrkit.data.encoders import COUNT, Encoders, stat_columns
from ctrkit.data.readers import _COMPRESSED, SourceFile, header_columns, named_once
from ctrkit.schema import OOV_ID, FeatureSchema, NumericFeature

try:
    from ctrkit.data import _dictscan
except ImportError:  # built without a C compiler: every file goes through the Polars reader
    _dictscan = None

#: A numeric value the fast path takes: plain decimal notation, which the CSV reader's typed
#: parse and a string cast read alike. Anything else ("inf", " 3", "1_000") goes to the Polars
#: reader, which decides whether it is an error.
_PLAIN_NUMBER = r"^-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"

#: The codes of every split stay in memory until the vocabulary is fitted; above this share of
#: the machine's memory the Polars reader, which can stream, is used instead.
_MEMORY_SHARE = 0.25


def unsupported(schema: FeatureSchema, sources: dict[str, SourceFile], on_bad_rows: str) -> str | None:
    """Why the native reader does not apply (None when it does)."""
    if _dictscan is None:
        return "the native reader (ctrkit.data._dictscan) is not built"
    if os.environ.get("CTRKIT_NATIVE_READER", "1") == "0":
        return "turned off by CTRKIT_NATIVE_READER=0"
    if on_bad_rows != "error":
        return "skipping bad rows needs the Polars reader"
    for src in sources.values():
        if src.format not in ("csv", "tsv") or src.path.name.lower().endswith(_COMPRESSED):
            return f"{src.path.name} is not a plain CSV/TSV file"
        sep = src.sep
        if len(sep) != 1 or not sep.isascii() or sep in '\r\n"':
            return f"separator {sep!r} is not one plain byte"
    return None


@dataclass
class _Piece:
    """A run of whole lines of one split's file, scanned by its own Scanner (pieces are scanned in
    parallel), then merged into the first piece's Scanner."""

    split: str
    src: SourceFile
    start: int
    stop: int
    header: bool  # the piece starts with the file's header line
    codes: np.ndarray | None = None  # (rows, K) int32, codes of this piece's own Scanner
    scanner: object | None = None
    counts: list[np.ndarray] | None = None  # per column: occurrences of each own code
    remap: list[np.ndarray] | None = None  # per column: own code -> merged code


def build(
    schema: FeatureSchema,
    sources: dict[str, SourceFile],
    splits: list[str],
    out: Path,
    step: Callable[[str], None],
) -> tuple[Encoders, FeatureSchema, dict[str, dict]] | None:
    """Write every split's arrays (``<out>/<split>/*.npy``: ids, dense, labels, group, domain,
    sequences);
    return the fitted encoders, the fitted schema and the per-split info of the store's
    manifest. None (nothing written) when the files or their values need the Polars reader.
    ``step(label)`` marks progress.

    The files are cut at line boundaries into pieces scanned by ``pl.thread_pool_size()``
    threads (POLARS_MAX_THREADS sets it, as for the Polars reader); the extension releases the
    GIL while it scans."""
    columns = schema.source_columns
    if not columns or "train" not in splits:
        return None
    colmaps = {}
    for split in splits:
        names = header_columns(sources[split])  # (a missing or empty file raises, as in the Polars reader)
        if not named_once(names, columns):
            return None  # the Polars reader names the absent or repeated column
        colmaps[split] = np.array([columns.index(n) if n in columns else -1 for n in names], dtype=np.int32)
    threads = max(1, pl.thread_pool_size())
    pieces = _cut(sources, splits, threads)
    # The codes take 4 bytes per field, a field at least 2 of text (a value and its separator).
    if 2 * sum(p.stop - p.start for p in pieces) > _MEMORY_SHARE * _os_memory():
        return None

    def scan(piece: _Piece) -> bool:
        return _scan(piece, columns, colmaps[piece.split])

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for i, ok in enumerate(pool.map(scan, pieces)):
            if not ok:
                return None
            if i + 1 == len(pieces) or pieces[i + 1].split != pieces[i].split:
                step(f"{pieces[i].split}: read")
    merged = pieces[0].scanner
    pieces[0].remap = [np.arange(c.size, dtype=np.int32) for c in pieces[0].counts]
    for piece in pieces[1:]:
        piece.remap = [np.frombuffer(r, dtype=np.int32) for r in merged.merge(piece.scanner)]
        piece.scanner = None
    distinct = _distinct_values(merged, columns)
    if distinct is None or not _values_pass(schema, distinct):
        return None
    counts = {split: [np.zeros(len(distinct[c]), dtype=np.int64) for c in columns] for split in splits}
    for piece in pieces:
        for k, (total, remap) in enumerate(zip(counts[piece.split], piece.remap)):
            total[remap] += piece.counts[k]

    step("train: fit")
    counted = {
        c: distinct[c].with_columns(pl.Series(COUNT, counts["train"][k], dtype=pl.Int64)) for k, c in enumerate(columns)
    }
    train_pieces = [p for p in pieces if p.split == "train"]
    numeric_rows = _train_numbers(train_pieces, distinct, {c: columns.index(c) for c in stat_columns(schema)})
    enc = Encoders.fit_counted(schema, counted, numeric_rows)
    fitted = enc.fitted_schema()

    col = {c: k for k, c in enumerate(columns)}
    ids = [(col[f.source], _lut(distinct[f.source], e, np.int32)) for f, e in zip(schema.categorical, enc.id_exprs())]
    dense = [(col[f.source], _lut(distinct[f.source], enc.numeric_expr(f), np.float32)) for f in schema.numeric]
    labels = [(col[t.source], _lut(distinct[t.source], e, np.float32)) for t, e in zip(schema.tasks, enc.label_exprs())]
    # Per-row keys of their own: the group's hash (int64) and the domain's index (int32).
    group = [(col[schema.group], _lut(distinct[schema.group], enc.group_expr(), np.int64))] if schema.group else []
    domain = []
    if schema.domain:
        ids_of = distinct[schema.domain].select(enc.domain_expr()).to_series()
        k = col[schema.domain]
        if any((counts[s][k][ids_of.is_null().to_numpy()] > 0).any() for s in splits):
            return None  # a domain unseen in train (or missing): the Polars reader names the line
        domain = [(k, ids_of.fill_null(-1).to_numpy().astype(np.int32))]
    sequences = [(f, col[f.source], _SequenceTable.of(distinct[f.source], enc.sequence_id_expr(f))) for f in schema.sequences]
    info: dict[str, dict] = {}
    for split in splits:
        step(f"{split}: encode")
        mine = [p for p in pieces if p.split == split]
        d = out / split
        d.mkdir()
        _write_gathered(d / "ids.npy", mine, ids, np.int32)
        _write_gathered(d / "dense.npy", mine, dense, np.float32)
        _write_gathered(d / "labels.npy", mine, labels, np.float32)
        if group:
            _write_gathered(d / "group.npy", mine, group, np.int64, flat=True)
        if domain:
            _write_gathered(d / "domain.npy", mine, domain, np.int32, flat=True)
        lab = np.load(d / "labels.npy")  # (small: one column per task)
        seq_info = {f.name: table.write(d, f.name, mine, k) for f, k, table in sequences}
        info[split] = {
            "rows": int(sum(p.codes.shape[0] for p in mine)),
            "positives": {t: int(lab[:, i].sum()) for i, t in enumerate(schema.task_names)},
            "oov": {
                f.name: int(counts[split][k][lut == OOV_ID].sum()) for f, (k, lut) in zip(schema.categorical, ids)
            },
            "sequences": seq_info,
        }
        for p in mine:
            p.codes = None  # (freed as soon as the split is written)
    return enc, fitted, info


def _os_memory() -> int:
    """Physical memory in bytes (a large default where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 << 30


#: Files smaller than this are one piece each: a thread per few MB costs more than it saves.
_MIN_PIECE = 16 << 20


def _cut(sources: dict[str, SourceFile], splits: list[str], threads: int) -> list[_Piece]:
    """Every split's file cut at newlines into pieces of about ``total / threads`` bytes, so the
    threads get similar work; train comes first."""
    sizes = {s: sources[s].path.stat().st_size for s in splits}
    target = max(_MIN_PIECE, sum(sizes.values()) // threads + 1)
    pieces = []
    for split in ["train"] + [s for s in splits if s != "train"]:
        src, size = sources[split], sizes[split]
        cuts = [0]
        if size > target:
            with open(src.path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                for i in range(1, -(-size // target)):
                    nl = mm.find(b"\n", max(cuts[-1], i * target))
                    if nl < 0 or nl + 1 >= size:
                        break
                    cuts.append(nl + 1)
        cuts.append(size)
        pieces += [_Piece(split, src, a, b, src.header and a == 0) for a, b in zip(cuts, cuts[1:])]
    return pieces


def _scan(piece: _Piece, columns: list[str], colmap: np.ndarray) -> bool:
    """Scan one piece into ``piece.codes`` / ``piece.scanner``; False when the scan does not
    accept it (wrong field count, blank line, quote) or it has no rows."""
    src = piece.src
    with open(src.path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if piece.start == 0 and not piece.header and mm[:3] == b"\xef\xbb\xbf":
            return False  # a byte order mark before the first value: the Polars reader drops it
        view = memoryview(mm)[piece.start : piece.stop]
        try:
            rows = _dictscan.count_lines(view) - (1 if piece.header else 0)
            if rows <= 0:
                return False
            scanner = _dictscan.Scanner(len(columns))
            codes = np.empty((rows, len(columns)), dtype=np.int32)
            status, got, _line = scanner.scan(view, ord(src.sep), int(piece.header), colmap, codes)
        finally:
            view.release()
    if status != _dictscan.SCAN_OK or got != rows:
        return False
    piece.codes, piece.scanner = codes, scanner
    piece.counts = [np.frombuffer(scanner.counts(k), dtype=np.int64) for k in range(len(columns))]
    return True


def _distinct_values(scanner: object, columns: list[str]) -> dict[str, pl.DataFrame] | None:
    """Each column's distinct raw values as a one-column String frame (row i: code i); an empty
    field is null, as the CSV reader reads it. None when some value is not UTF-8."""
    out = {}
    for k, c in enumerate(columns):
        blob, offsets = scanner.values(k)
        n = len(offsets) // 8 - 1
        arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(blob))
        try:
            arr.validate(full=True)
        except pa.ArrowInvalid:
            return None  # the Polars reader reports the undecodable line
        s = pl.Series(c, arr, dtype=pl.String)
        out[c] = s.to_frame().select(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c))
    return out


def _values_pass(schema: FeatureSchema, distinct: dict[str, pl.DataFrame]) -> bool:
    """True when no distinct value fails a check and every numeric value is plain decimal."""
    enc = Encoders(schema)
    for col, _problem, bad in enc.validation_exprs():
        if distinct[col].select(bad.any()).item():
            return False
    numeric = {f.source for f in schema.features if isinstance(f, NumericFeature)}
    for col in numeric:
        v = pl.col(col)
        if distinct[col].select((v.is_not_null() & ~v.str.contains(_PLAIN_NUMBER)).any()).item():
            return False
    return True


def _train_numbers(pieces: list[_Piece], distinct: dict[str, pl.DataFrame], cols: dict[str, int]) -> pl.LazyFrame | None:
    """The train rows' values of ``cols`` (column -> index), in file order, as numbers with null
    for a missing value: what statistics and quantiles are computed on. The values are gathered
    through each column's distinct values (a null travels as NaN: a NaN read from the file never
    gets here, only plain decimal numbers do)."""
    if not cols:
        return None
    rows = sum(p.codes.shape[0] for p in pieces)
    out = {}
    for c, k in cols.items():
        lut = _lut(distinct[c], pl.col(c).cast(pl.Float64, strict=False).fill_null(float("nan")), np.float64)
        values = np.empty((rows, 1), dtype=np.float64)
        at = 0
        for p in pieces:
            n = p.codes.shape[0]
            src, offs = np.array([k], dtype=np.int32), np.zeros(1, dtype=np.int64)
            _dictscan.gather(p.codes, p.codes.shape[1], src, offs, lut[p.remap[k]], values[at : at + n], 8)
            at += n
        out[c] = pl.Series(c, values[:, 0]).fill_nan(None)
    return pl.DataFrame(out).lazy()


@dataclass
class _SequenceTable:
    """A sequence column's encoded lists, one per distinct value: value i's ids are
    ``flat[start[i] : start[i] + length[i]]``."""

    flat: np.ndarray  # int32
    start: np.ndarray  # int64
    length: np.ndarray  # int64

    @classmethod
    def of(cls, values: pl.DataFrame, expr: pl.Expr) -> "_SequenceTable":
        lists = values.select(expr).to_series()
        length = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
        start = np.zeros(length.size, dtype=np.int64)
        np.cumsum(length[:-1], out=start[1:])
        return cls(lists.explode().drop_nulls().to_numpy().astype(np.int32), start, length)

    def write(self, d: Path, name: str, pieces: list[_Piece], k: int) -> dict:
        """``seq.<name>.values.npy`` and ``.offsets.npy`` of one split (as the Polars reader
        writes them) and the manifest's figures for it."""
        code = np.concatenate([p.remap[k][p.codes[:, k]] for p in pieces])
        lengths = self.length[code]
        offsets = np.zeros(code.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Item j of row r sits at flat[start[code[r]] + j]: one index per item, all at once.
        index = np.repeat(self.start[code] - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        values = self.flat[index]
        np.save(d / f"seq.{name}.values.npy", values)
        np.save(d / f"seq.{name}.offsets.npy", offsets)
        return {
            "mean_length": float(np.diff(offsets).mean()) if code.size else 0.0,
            "oov": int((values == OOV_ID).sum()),
            "items": int(values.size),
        }


def _lut(values: pl.DataFrame, expr: pl.Expr, dtype: type) -> np.ndarray:
    """``expr`` evaluated on a column's distinct values: the lookup table from code to output."""
    return np.ascontiguousarray(values.select(expr).to_series().to_numpy(), dtype=dtype)


#: Rows gathered and written per block: a block (a few MB) stays in cache between the gather
#: and the write, where a whole array would make a round trip through memory.
_BLOCK_ROWS = 1 << 14


def _write_gathered(
    path: Path, pieces: list[_Piece], luts: list[tuple[int, np.ndarray]], dtype: type, *, flat: bool = False
) -> None:
    """Write the ``.npy`` of the (rows, len(luts)) array whose column j is ``lut_j[code]`` of
    column ``k_j``, the pieces one after the other, gathered by the extension one block of rows
    at a time (through each piece's remap to the merged codes). ``flat``: one lut, shape (rows,)."""
    rows = sum(p.codes.shape[0] for p in pieces)
    shape = (rows,) if flat else (rows, len(luts))
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        if not luts or not rows:
            return
        srcs = np.array([k for k, _ in luts], dtype=np.int32)
        block = np.empty((min(rows, _BLOCK_ROWS), len(luts)), dtype=dtype)
        for piece in pieces:
            # This piece's own codes index the merged tables through its remap.
            tables = [lut[piece.remap[k]].astype(dtype, copy=False) for k, lut in luts]
            offsets = np.concatenate([[0], np.cumsum([t.size for t in tables[:-1]])]).astype(np.int64)
            table = np.concatenate(tables)
            codes = piece.codes
            for start in range(0, codes.shape[0], _BLOCK_ROWS):
                part = codes[start : start + _BLOCK_ROWS]
                out = block[: part.shape[0]]
                _dictscan.gather(part, codes.shape[1], srcs, offsets, table, out, out.itemsize)
                fh.write(out.data)

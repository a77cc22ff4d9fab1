"""Scoring raw records with an exported bundle: the run's fitted encoders, then its model.

    >>> p = Predictor.load("bundles/deepfm")
    >>> p.predict([{"C1": "a3f9", "I1": 4, "hist_items": ["i1", "i7"]}])
    {'click': array([0.231...], dtype=float32)}

Encoding is exactly the training pipeline's: a Polars frame is built from the records and encoded
with the fitted :class:`~ctrkit.data.encoders.Encoders` expressions (unseen categories -> OOV,
missing values -> the schema's ``fill_value``), then batched like the offline loader. That is the
general path. The usual inputs take a faster one with the same ids and values
(:class:`_FastEncoder`): lists of dict records without Polars, tables (Polars, pyarrow, pandas) in
one Polars select; both look tokens up in dicts built once at load (per request that beats any
Polars join, ``replace_strict`` or Enum cast, which all rebuild a hash table of the vocabulary on
every call). Anything unusual falls back to the general path, which owns the error messages.

Input rules:

* categorical values are read as strings (``12`` and ``"12"`` are the same category);
* numeric values are finite numbers or numeric strings; ``None`` is a missing value (the fill
  value), and so is NaN in a DataFrame column (pandas' missing marker); NaN/inf in a record is an
  error;
* sequences are lists of scalars, or one string joined with the field's delimiter;
* a field absent from a record takes its fill value with ``missing="fill"`` (the default), or
  raises :class:`InputError` naming the field with ``missing="error"`` (an explicit ``None`` is a
  missing *value*, as an empty cell in a training file, and is accepted in both modes);
* keys that are not inputs (labels, ids, anything else) are ignored with ``unknown="ignore"``
  (the default) or rejected by name with ``unknown="error"``.
"""

from __future__ import annotations

import bisect
import json
import math
import operator
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import polars as pl
import torch

from ctrkit.batch import Batch, SequenceBatch
from ctrkit.data.encoders import Encoders
from ctrkit.data.loader import BatchLoader
from ctrkit.data.store import SplitArrays
from ctrkit.errors import CtrkitError
from ctrkit.schema import NUM_RESERVED, OOV_ID, FeatureSchema, NumericFeature, SequenceFeature

Backend = Literal["auto", "eager", "torchscript", "onnx", "onnx_int8", "torchscript_int8"]
Missing = Literal["fill", "error"]
Unknown = Literal["ignore", "error"]
#: fp32 backends reproduce offline evaluation; the ``*_int8`` ones exist in bundles exported with
#: ``quantize="int8"`` and trade a measured accuracy cost (``metadata.json`` ``quantization``) for speed.
BACKENDS = ("eager", "torchscript", "onnx", "onnx_int8", "torchscript_int8")


class InputError(CtrkitError, ValueError):
    """A record cannot be scored: names the field (and the record's index when known)."""

    def __init__(self, message: str, *, field: str | None = None, record: int | None = None):
        self.field = field
        self.record = record
        self.reason = message
        where = []
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__((", ".join(where) + ": " if where else "") + message)

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "record": self.record, "error": self.reason}


class BundleError(CtrkitError, ValueError):
    """A bundle directory is missing, incomplete or corrupted."""


@dataclass(frozen=True)
class _Column:
    name: str  # raw source column
    kind: Literal["categorical", "numeric", "sequence", "domain"]
    delimiter: str = "^"


def _columns(schema: FeatureSchema) -> list[_Column]:
    cols: dict[str, _Column] = {}
    for f in schema.features:
        if isinstance(f, SequenceFeature):
            cols.setdefault(f.source, _Column(f.source, "sequence", f.delimiter))
        elif isinstance(f, NumericFeature):
            cols.setdefault(f.source, _Column(f.source, "numeric"))
        else:
            cols.setdefault(f.source, _Column(f.source, "categorical"))
    if schema.domain is not None:
        cols.setdefault(schema.domain, _Column(schema.domain, "domain"))
    return list(cols.values())


def _scalar_str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            raise TypeError("a non-finite number is not a category")
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    raise TypeError(f"expected a string or number, got {type(v).__name__}")


class _EncodePlan:
    """:func:`ctrkit.data.store.encode_frame` for request-sized frames, with the same ids.

    ``encode_frame`` rebuilds every vocabulary as a Polars mapping on each call, which costs tens
    of milliseconds for one record. Here the fitted :class:`Encoders` expressions are built once:
    tokens (``token_expr`` / ``sequence_expr``: casting, fill values, criteo_log2) and the
    vocabulary-free ids (quantile buckets, hashed vocabularies, numerics, domains) come from
    Polars; the vocabulary lookup of a token is a dict built once from the same vocabulary
    (``values[i] -> i + 2``, unseen -> OOV), which is what ``Vocab.encode`` computes.
    """

    def __init__(self, enc: Encoders, schema: FeatureSchema):
        self.schema = schema
        id_exprs = enc.id_exprs()
        self.exprs: list[pl.Expr] = []
        self.lookup: dict[str, _Ids] = {}  # column -> token -> id (dict-encoded columns)
        dicts: dict[str, _Ids] = {}

        def vocab_dict(owner: str) -> _Ids | None:
            v = enc.vocabs.get(owner)
            if v is None or v.hash_buckets:
                return None
            if owner not in dicts:
                dicts[owner] = _Ids({tok: i + NUM_RESERVED for i, tok in enumerate(v.values)})
            return dicts[owner]

        for f, expr in zip(schema.categorical, id_exprs):
            quantile = isinstance(f, NumericFeature) and f.bucketize is not None and f.bucketize.method == "quantile"
            d = None if quantile else vocab_dict(schema.vocab_owner(f.name))
            if d is None:
                self.exprs.append(expr)
            else:
                self.exprs.append(enc.token_expr(f).alias(f.name))
                self.lookup[f.name] = d
        self.exprs += [enc.numeric_expr(f).alias(f"num:{f.name}") for f in schema.numeric]
        for f in schema.sequences:
            d = vocab_dict(schema.vocab_owner(f.name))
            if d is None:
                self.exprs.append(enc.sequence_id_expr(f))
            else:
                self.exprs.append(enc.sequence_expr(f).alias(f.name))
                self.lookup[f.name] = d
        if schema.domain:
            self.exprs.append(enc.domain_expr())

    def encode(self, frame: pl.DataFrame) -> SplitArrays:
        df = frame.select(self.exprs)
        n = df.height
        ids = np.zeros((n, len(self.schema.categorical)), dtype=np.int32)
        for j, f in enumerate(self.schema.categorical):
            d = self.lookup.get(f.name)
            col = df[f.name]
            if d is None:
                ids[:, j] = col.to_numpy()
            else:
                # Tokens are strings here (fill values applied): a C-level map, unseen -> OOV.
                ids[:, j] = np.fromiter(map(d.__getitem__, col.to_list()), dtype=np.int32, count=n)
        dense = (
            np.ascontiguousarray(df.select([f"num:{f.name}" for f in self.schema.numeric]).to_numpy().astype(np.float32, copy=False))
            if self.schema.numeric else np.zeros((n, 0), dtype=np.float32)
        )
        arr = SplitArrays(ids=ids, dense=dense, labels=np.zeros((n, 0), dtype=np.float32))
        if self.schema.domain:
            arr.domain = df["__domain"].to_numpy().astype(np.int32)
        for f in self.schema.sequences:
            col = df[f.name]
            lengths = col.list.len().fill_null(0).to_numpy().astype(np.int64)
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            flat = col.explode().drop_nulls()
            d = self.lookup.get(f.name)
            if d is None:
                values = flat.to_numpy().astype(np.int32)
            else:
                values = np.fromiter(map(d.__getitem__, flat.to_list()), dtype=np.int32, count=flat.len())
            arr.seq_values[f.name] = values
            arr.seq_offsets[f.name] = offsets
        return arr


class _Fallback(Exception):
    """Raised inside :class:`_FastEncoder` when a request needs the general (Polars) path."""


_NONE = type(None)
_NUM_TYPES = frozenset({float, int, _NONE})
_STR = frozenset({str})
_INT64_LIMIT = 9.2e18  # |x| beyond this would fail Polars' strict Int64 cast: general path
_SMALL = 64  # below this many records, numeric columns stay Python lists (no numpy set-up cost)


def _vmap(fn: Any, x: np.ndarray, dtype: Any) -> np.ndarray:
    """``fn`` (a Python scalar function) over ``x``, computed once per distinct value."""
    u, inv = np.unique(x, return_inverse=True)
    return np.array([fn(v) for v in u.tolist()], dtype=dtype)[inv.reshape(-1)]


def _log1p_matches_libm() -> bool:
    """Whether numpy's float64 ``log1p`` gives exactly ``math.log1p`` (the C library's, which is
    what Polars' ``log1p`` calls) on a probe of typical and awkward inputs. True on builds that
    use the C library; a SIMD build with a different rounding would make the fast path's dense
    values differ from the general path's in the last bit, so then it computes per distinct value
    with ``math.log1p`` instead."""
    rng = np.random.default_rng(0)
    probe = np.concatenate([
        np.arange(0, 100_000, dtype=np.float64),
        rng.uniform(0, 10, 20_000), rng.lognormal(0, 6, 20_000), [1e-300, 1e-17, 5e-9, 0.5, 1e300],
    ])
    want = np.array([math.log1p(v) for v in probe.tolist()])
    return bool(np.array_equal(np.log1p(probe), want))


#: Computed at first use (see :func:`_signed_log1p_array`).
_NP_LOG1P_EXACT: bool | None = None


def _signed_log1p_array(x: np.ndarray) -> np.ndarray:
    """sign(x) * log1p(|x|) of a float64 array, bit-identical to the Polars normalizer."""
    global _NP_LOG1P_EXACT
    if _NP_LOG1P_EXACT is None:
        _NP_LOG1P_EXACT = _log1p_matches_libm()
    if _NP_LOG1P_EXACT:
        return np.sign(x) * np.log1p(np.abs(x))
    return _vmap(_FastEncoder._signed_log1p, x, np.float64)


class _Ids(dict):
    """raw value -> local id, for ``map(ids.__getitem__, values)`` at C speed.

    Keys are the vocabulary's token strings and ``None`` (-> the fill value's id). A string that is
    not a key is out-of-vocabulary. An int, float or bool is looked up by its token (``12`` and
    ``12.0`` -> ``"12"``, as the general path casts them), so a column needs no type scan before
    the lookup; anything else (NaN, numpy scalars, containers) raises :class:`_Fallback` and the
    general path reports it."""

    def __missing__(self, key: Any) -> int:
        if isinstance(key, str):  # str subclasses (np.str_) hash and compare as their text
            return OOV_ID
        if type(key) in (int, float, bool):
            try:
                tok = _scalar_str(key)
            except TypeError:  # NaN / inf are not categories
                raise _Fallback from None
            return self.get(tok, OOV_ID)
        raise _Fallback


class _FastEncoder:
    """The encoding of :class:`_EncodePlan` for lists of dict records (:meth:`encode`, no Polars)
    and tables (:meth:`encode_table`, one Polars select, then the same lookups).

    Everything a record needs is prepared once at load: per categorical field a dict from the raw
    value (token strings, plus ``None`` -> the fill value's id) to its local id, hashing owners
    through the same CRC32, criteo_log2 / quantile buckets through ``math`` / ``bisect`` (numpy
    ``searchsorted`` for large batches), the normalizers with the fitted statistics, sequences split,
    truncated and mapped in Python. The ids are the ones the Polars expressions give (the tests
    compare both paths). Anything unusual (string numbers, non-finite values, unknown or missing
    fields in ``error`` modes, unseen domains, non-dict records, numpy scalars) raises
    :class:`_Fallback` and the request goes through the general path, which owns every error
    message.
    """

    def __init__(self, pred: "Predictor"):
        from ctrkit.batch import FieldLayout

        schema = pred._encode_schema
        enc = pred._encoders
        self.ok = True
        self.schema = schema
        self.missing = pred.missing
        self.unknown = pred.unknown
        self.known = frozenset(pred.known_columns)
        self.inputs = frozenset(pred.input_columns)
        self.columns = pred.columns
        kinds = {c.name: c.kind for c in pred.columns}
        layout = FieldLayout.from_schema(schema)
        self.offsets = layout.categorical_offsets
        owner_dicts: dict[str, dict[Any, int]] = {}

        def owner_lookup(name: str) -> tuple[dict[Any, int] | None, int | None]:
            owner = schema.vocab_owner(name)
            v = enc.vocabs[owner]
            if v.hash_buckets:
                return None, int(v.hash_buckets)
            if owner not in owner_dicts:
                owner_dicts[owner] = {tok: i + NUM_RESERVED for i, tok in enumerate(v.values)}
            return owner_dicts[owner], None

        # (kind, source, fill, table, hash buckets, extra) per schema.categorical field
        self.cat: list[tuple] = []
        for f in schema.categorical:
            if isinstance(f, NumericFeature):
                if kinds.get(f.source) != "numeric" or f.bucketize is None:
                    self.ok = False
                    return
                if f.bucketize.method == "quantile":
                    edges = [float(e) for e in enc.edges.get(f.name, [])]
                    self.cat.append(("quantile", f.source, float(f.fill_value), None, None, edges))
                else:
                    d, hb = owner_lookup(f.name)
                    self.cat.append(("log2", f.source, float(f.fill_value), d, hb, None))
            else:
                if kinds.get(f.source) != "categorical":
                    self.ok = False
                    return
                d, hb = owner_lookup(f.name)
                if d is not None:
                    d = _Ids(d)
                    d[None] = d[f.fill_value]
                self.cat.append(("cat", f.source, f.fill_value, d, hb, None))
        self.num: list[tuple] = []
        for f in schema.numeric:
            if kinds.get(f.source) != "numeric":
                self.ok = False
                return
            st = enc.stats.get(f.name, {})
            if f.normalizer == "standard":
                args: tuple = (float(st["mean"]), float(st["std"]) if st["std"] > 0 else 1.0)
            elif f.normalizer == "minmax":
                span = st["max"] - st["min"]
                args = (float(st["min"]), float(span) if span > 0 else 1.0)
            else:
                args = (0.0, 1.0)
            self.num.append((f.normalizer, f.source, float(f.fill_value), args))
        if any(norm == "log" for norm, *_ in self.num):
            _signed_log1p_array(np.zeros(1))  # runs the one-off numpy/libm probe now, not in a request
        self.seq: list[tuple] = []
        for f in schema.sequences:
            if kinds.get(f.source) != "sequence":
                self.ok = False
                return
            d, hb = owner_lookup(f.name)
            self.seq.append((f.name, f.source, f.max_len, f.truncate == "pre", d, hb, layout.offset(f.name)))
        self._names = [c.name for c in pred.columns]
        self._getter = operator.itemgetter(*self._names)
        self._delimiters = {c.name: c.delimiter for c in pred.columns if c.kind == "sequence"}
        self.domain = schema.domain
        self.domain_ids = {v: i for i, v in enumerate(enc.domains)}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _hash_ids(toks: list[str], buckets: int) -> list[int]:
        try:
            return [NUM_RESERVED + zlib.crc32(t.encode()) % buckets for t in toks]
        except UnicodeEncodeError:
            raise _Fallback from None

    @staticmethod
    def _tokens(vals: Sequence[Any], fill: str) -> list[str]:
        try:
            out = [v if type(v) is str else fill if v is None else _scalar_str(v) for v in vals]
        except TypeError:
            raise _Fallback from None
        if not set(map(type, out)) <= _STR:  # numpy scalars, str subclasses...
            raise _Fallback
        return out

    def _cat_ids(self, vals: Sequence[Any], fill: str, d: dict[Any, int] | None, hb: int | None) -> list[int]:
        if d is None:
            return self._hash_ids(self._tokens(vals, fill), hb or 1)
        # None -> the fill value's id; numbers -> their token's; unseen -> OOV (_Ids.__missing__)
        try:
            if len(vals) < _SMALL:
                return list(map(d.__getitem__, vals))
            return np.fromiter(map(d.__getitem__, vals), dtype=np.int64, count=len(vals))
        except TypeError:  # unhashable (a list or dict as a category): the general path names it
            raise _Fallback from None

    @staticmethod
    def _numbers(vals: Sequence[Any], small: bool) -> Any:
        """Python floats (None kept) for small requests, else float64 with NaN for None."""
        if not set(map(type, vals)) <= _NUM_TYPES:
            raise _Fallback  # strings, bools, numpy scalars, objects: the general path decides
        if small:
            try:
                xs = [None if v is None else float(v) for v in vals]
            except OverflowError:
                raise _Fallback from None
            if not all(x is None or math.isfinite(x) for x in xs):
                raise _Fallback
            return xs
        try:
            nones = vals.count(None)
            x = np.array([math.nan if v is None else v for v in vals] if nones else vals, dtype=np.float64)
        except (OverflowError, ValueError, TypeError):
            raise _Fallback from None
        nan = np.isnan(x)
        if np.isinf(x).any() or int(nan.sum()) != nones:
            raise _Fallback
        return x

    @staticmethod
    def _filled(x: Any, fill: float, small: bool) -> Any:
        if small:
            return [fill if v is None else v for v in x]
        return np.where(np.isnan(x), fill, x)

    @staticmethod
    def _log2_token(x: float) -> str:
        if abs(x) >= _INT64_LIMIT:
            raise _Fallback
        return str(int(math.floor(math.log(x) ** 2)) if x > 2 else int(x))

    def _lookup_tokens(self, toks: list[str], d: dict[Any, int] | None, hb: int | None) -> list[int]:
        if d is None:
            return self._hash_ids(toks, hb or 1)
        get = d.get
        return [get(t, OOV_ID) for t in toks]

    @staticmethod
    def _signed_log1p(x: float) -> float:
        return float((x > 0) - (x < 0)) * math.log1p(abs(x))

    # ------------------------------------------------------------------ encode
    def encode(self, records: Sequence[Any]) -> Batch:
        n = len(records)
        if n == 0:
            raise _Fallback
        for r in records:
            if type(r) is not dict:
                raise _Fallback
        if self.unknown == "error" and any(not (r.keys() <= self.known) for r in records):
            raise _Fallback
        if self.missing == "error" and any(not (self.inputs <= r.keys()) for r in records):
            raise _Fallback
        if n == 1 and not self.seq and self.domain is None:
            one = self._encode_one(records[0])
            if one is not None:
                return one
        return self._encode_columns(self._extract(records), n, n < _SMALL, {})

    @staticmethod
    def _one_number(v: Any, fill: float) -> float:
        """One raw numeric value as :meth:`_numbers` + :meth:`_filled` treat it (small path)."""
        if v is None:
            return fill
        if type(v) not in _NUM_TYPES:
            raise _Fallback
        try:
            x = float(v)
        except OverflowError:
            raise _Fallback from None
        if not math.isfinite(x):
            raise _Fallback
        return x

    def _encode_one(self, r: dict) -> Batch | None:
        """A single record (the one-request path of a server) without the per-column lists of
        :meth:`_encode_columns`: the same lookups and arithmetic in one pass over the fields, so
        the same ids and floats. None where that path has work this one does not do (hashed
        categories: the caller then takes the column path)."""
        get = r.get
        ids: list[int] = []
        for kind, src, fill, d, hb, edges in self.cat:
            v = get(src)
            if kind == "cat":
                if d is None:
                    return None
                try:
                    ids.append(d[v])
                except TypeError:  # unhashable: the general path names it
                    raise _Fallback from None
                continue
            x = self._one_number(v, fill)
            if kind == "quantile":
                ids.append(bisect.bisect_right(edges, x) + NUM_RESERVED)
            else:
                ids.append(self._lookup_tokens([self._log2_token(x)], d, hb)[0])
        dense: list[float] = []
        for norm, src, fill, (a, b) in self.num:
            x = self._one_number(get(src), fill)
            if norm in ("standard", "minmax"):
                x = (x - a) / b
            elif norm == "log":
                x = self._signed_log1p(x)
            dense.append(x)
        id_arr = np.array([ids], dtype=np.int64).reshape(1, len(ids))
        id_arr += self.offsets
        dense_arr = np.array([dense], dtype=np.float64).reshape(1, len(dense)).astype(np.float32)
        return Batch(ids=torch.from_numpy(id_arr), dense=torch.from_numpy(dense_arr))

    def encode_table(self, table: pl.DataFrame, exprs: Sequence[pl.Expr]) -> Batch:
        """A table of raw columns -> Batch, in one Polars select and no per-record step.

        ``exprs`` (:meth:`Predictor._table_exprs`, one per input column, in ``columns`` order)
        normalise the client's dtypes; on top of them every categorical column becomes text (the
        cast ``token_expr`` applies) and every numeric column float64 (``numeric_expr``'s parse).
        The columns then go through the lookups of :meth:`encode` as lists and arrays. Text that
        does not parse as a number raises :class:`_Fallback`: the general path validates it and
        names the row."""
        n = table.height
        if n == 0:
            raise _Fallback
        sel: list[pl.Expr] = []
        numeric = []
        for c, e in zip(self.columns, exprs):
            if c.kind == "numeric":
                x = e.cast(pl.Float64, strict=False)
                sel.append(x.alias(c.name))
                # One boolean per column, broadcast by the select.
                sel.append((x.is_null() & e.is_not_null()).any().alias(f"\0bad:{c.name}"))
                numeric.append(c.name)
            else:
                sel.append(e.cast(pl.String).alias(c.name))
        df = table.select(sel)
        if df.height != n:  # only literal columns (every input missing): the general path
            raise _Fallback
        nums: dict[str, Any] = {}
        for c in numeric:
            if df[f"\0bad:{c}"][0]:
                raise _Fallback
            x = df[c].to_numpy().astype(np.float64, copy=False)  # null -> NaN: a missing value
            if np.isinf(x).any():
                raise _Fallback  # the general path owns non-finite values
            nums[c] = x
        raw = {c.name: df[c.name].to_list() for c in self.columns if c.kind != "numeric"}
        return self._encode_columns(raw, n, False, nums)

    def _encode_columns(self, raw: Mapping[str, Sequence[Any]], n: int, small: bool, nums: dict[str, Any]) -> Batch:
        """Input column -> its ``n`` raw values (``raw``; numeric columns may come already parsed
        in ``nums``: float64 arrays, NaN = missing) -> Batch. ``small``: Python lists throughout
        (cheaper than numpy below ~64 rows)."""

        def numbers(src: str) -> Any:
            x = nums.get(src)
            if x is None:
                x = nums[src] = self._numbers(raw[src], small)
            return x

        id_cols: list[Any] = []
        for kind, src, fill, d, hb, edges in self.cat:
            if kind == "cat":
                id_cols.append(self._cat_ids(raw[src], fill, d, hb))
                continue
            x = self._filled(numbers(src), fill, small)
            if kind == "quantile":
                if small:
                    id_cols.append([bisect.bisect_right(edges, v) + NUM_RESERVED for v in x])
                else:
                    id_cols.append(np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="right") + NUM_RESERVED)
            elif small:
                id_cols.append(self._lookup_tokens([self._log2_token(v) for v in x], d, hb))
            else:
                u, inv = np.unique(x, return_inverse=True)
                ids_u = np.array(self._lookup_tokens([self._log2_token(v) for v in u.tolist()], d, hb), dtype=np.int64)
                id_cols.append(ids_u[inv.reshape(-1)])
        if id_cols:
            ids = np.ascontiguousarray(np.array(id_cols, dtype=np.int64).T)
            ids += self.offsets
        else:
            ids = np.zeros((n, 0), dtype=np.int64)

        dense_cols: list[Any] = []
        for norm, src, fill, (a, b) in self.num:
            x = self._filled(numbers(src), fill, small)
            if norm in ("standard", "minmax"):
                dense_cols.append([(v - a) / b for v in x] if small else (x - a) / b)
            elif norm == "log":
                dense_cols.append([self._signed_log1p(v) for v in x] if small else _signed_log1p_array(x))
            else:
                dense_cols.append(x)
        if dense_cols:
            dense = np.ascontiguousarray(np.array(dense_cols, dtype=np.float64).T.astype(np.float32))
        else:
            dense = np.zeros((n, 0), dtype=np.float32)

        seqs: dict[str, SequenceBatch] = {}
        split: dict[str, list[list[str]]] = {}
        for name, src, max_len, pre, d, hb, off in self.seq:
            rows = split.get(src)
            if rows is None:
                rows = split[src] = self._split(raw[src], self._delimiters[src])
            rows = [t[-max_len:] for t in rows] if pre else [t[:max_len] for t in rows]
            lengths = np.fromiter(map(len, rows), dtype=np.int64, count=n)
            L = int(lengths.max())
            if L == 0:
                vals = np.full((n, 1), off, dtype=np.int64)
            else:
                flat = [t for row in rows for t in row]
                vals = np.zeros((n, L), dtype=np.int64)
                vals[np.arange(L)[None, :] < lengths[:, None]] = self._lookup_tokens(flat, d, hb)
                vals += off
            seqs[name] = SequenceBatch(torch.from_numpy(vals), torch.from_numpy(lengths))

        domain = None
        if self.domain is not None:
            get = self.domain_ids.get
            dom = [get(t) for t in self._tokens(raw[self.domain], "")]
            if None in dom or None in raw[self.domain]:
                raise _Fallback  # missing or unseen domain: the general path reports it
            domain = torch.from_numpy(np.array(dom, dtype=np.int64))
        return Batch(ids=torch.from_numpy(ids), dense=torch.from_numpy(dense), sequences=seqs, domain=domain)

    def _extract(self, records: Sequence[dict]) -> dict[str, Sequence[Any]]:
        """Input column -> its values (None where absent): one C-level transpose when every
        record has every input, else a lookup per column."""
        names = self._names
        if len(names) > 1:
            try:
                return dict(zip(names, zip(*map(self._getter, records))))
            except KeyError:
                pass
        return {c: [r.get(c) for r in records] for c in names}

    @staticmethod
    def _split(vals: Sequence[Any], delim: str) -> list[list[str]]:
        out = []
        for v in vals:
            if v is None:
                out.append([])
                continue
            if type(v) is not str:
                if type(v) not in (list, tuple):
                    raise _Fallback
                try:
                    v = delim.join(t for t in (x if type(x) is str else _scalar_str(x) for x in v) if t is not None)
                except TypeError:
                    raise _Fallback from None
            out.append([t for t in v.split(delim) if t])
        return out


class Predictor:
    """A loaded bundle: ``predict(records) -> {task: probabilities}``. Thread-safe for scoring."""

    def __init__(
        self,
        bundle: Path,
        metadata: dict[str, Any],
        schema: FeatureSchema,
        encoders: Encoders,
        backend: str,
        runner: Any,
        *,
        missing: Missing = "fill",
        unknown: Unknown = "ignore",
    ):
        self.bundle = bundle
        self.metadata = metadata
        self.schema = schema
        self.encoders = encoders
        self.backend = backend
        self._run = runner
        if missing not in ("fill", "error"):
            raise ValueError(f"missing must be 'fill' or 'error', got {missing!r}")
        if unknown not in ("ignore", "error"):
            raise ValueError(f"unknown must be 'ignore' or 'error', got {unknown!r}")
        self.missing = missing
        self.unknown = unknown
        self.task_names = list(schema.task_names)
        self.columns = _columns(schema)
        self.input_columns = [c.name for c in self.columns]
        # Columns a record may carry without being inputs: labels and the gAUC group.
        self.known_columns = set(self.input_columns) | {t.source for t in schema.tasks}
        if schema.group is not None:
            self.known_columns.add(schema.group)
        # Group ids are for gAUC only; the domain stays (multi-domain models read it).
        self._encode_schema = schema.model_copy(update={"group": None})
        self._encoders = Encoders(
            self._encode_schema, encoders.vocabs, encoders.stats, encoders.edges, encoders.domains
        )
        self._plan = _EncodePlan(self._encoders, self._encode_schema)
        self._num_checks = [
            (col, problem, expr)
            for col, problem, expr in self._encoders.validation_exprs()
            if col in self.input_columns
        ]
        #: Lists of dict records skip Polars (:class:`_FastEncoder`); False forces the general path.
        self.fast_encoding = True
        try:
            fast: _FastEncoder | None = _FastEncoder(self)
        except (KeyError, ValueError):  # e.g. an unfitted schema: the general path reports it
            fast = None
        self._fast = fast if fast is not None and fast.ok else None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        bundle: str | Path,
        *,
        backend: Backend = "auto",
        missing: Missing = "fill",
        unknown: Unknown = "ignore",
        threads: int | None = None,
        verify: bool = True,
    ) -> "Predictor":
        """Load a bundle written by :func:`~ctrkit.serve.export.export_run`.

        ``backend="auto"`` takes the bundle's fastest measured backend (``metadata.json``
        ``default_backend``), falling back to eager. ``verify`` checks every file's sha256 against
        the metadata. ``threads`` sets ONNX Runtime's intra-op threads (torch uses the process
        setting).
        """
        d = Path(bundle)
        if not (d / "metadata.json").is_file():
            raise BundleError(f"{d}: not a ctrkit bundle (no metadata.json)")
        meta = json.loads((d / "metadata.json").read_text())
        if verify:
            from ctrkit.serve.export import file_sha256

            for name, digest in meta.get("files", {}).items():
                p = d / name
                if not p.is_file():
                    raise BundleError(f"{d}: bundle file {name} is missing")
                if file_sha256(p) != digest:
                    raise BundleError(f"{d}: bundle file {name} does not match its hash in metadata.json")
        schema = FeatureSchema.from_json(d / "schema.json")
        enc = Encoders.load(d / "encoders.json")
        backends = meta.get("backends", {})
        if backend == "auto":
            backend = meta.get("default_backend", "eager")  # type: ignore[assignment]
            if not backends.get(backend, {}).get("ok", backend == "eager"):
                backend = "eager"
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {('auto',) + BACKENDS}, got {backend!r}")
        if backend != "eager" and not backends.get(backend, {}).get("ok"):
            why = backends.get(backend, {}).get("error") or "not exported"
            raise BundleError(f"{d}: bundle has no working {backend} model ({why})")
        runner = _make_runner(d, meta, schema, backend, threads)
        return cls(d, meta, schema, enc, backend, runner, missing=missing, unknown=unknown)

    # ------------------------------------------------------------------ encoding
    def _frame_from_records(self, records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
        n = len(records)
        data: dict[str, pl.Series] = {}
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                raise InputError(f"a record must be an object/dict, got {type(r).__name__}", record=i)
            if self.unknown == "error":
                for k in r:
                    if k not in self.known_columns:
                        raise InputError("unknown field (not an input of this model)", field=str(k), record=i)
            if self.missing == "error":
                for c in self.input_columns:
                    if c not in r:
                        raise InputError("required field is missing", field=c, record=i)
        for col in self.columns:
            vals: list[Any] = [None] * n
            c = col.name
            for i, r in enumerate(records):
                v = r.get(c)
                if v is None:
                    continue
                try:
                    if col.kind == "numeric":
                        if isinstance(v, bool) or not isinstance(v, (int, float, str, np.integer, np.floating)):
                            raise TypeError(f"expected a number, got {type(v).__name__}")
                        if not isinstance(v, str) and not math.isfinite(float(v)):
                            raise TypeError(f"expected a finite number, got {v!r}")
                        vals[i] = v if isinstance(v, str) else float(v)
                    elif col.kind == "sequence":
                        if isinstance(v, str):
                            vals[i] = v
                        elif isinstance(v, (list, tuple)):
                            toks = [_scalar_str(x) for x in v]
                            vals[i] = col.delimiter.join(t for t in toks if t is not None)
                        else:
                            raise TypeError(f"expected a list or a delimited string, got {type(v).__name__}")
                    else:
                        vals[i] = _scalar_str(v)
                except TypeError as e:
                    raise InputError(str(e), field=c, record=i) from None
            if col.kind == "numeric":
                # Strings stay strings (validated below); numbers become floats.
                if any(isinstance(v, str) for v in vals):
                    data[c] = pl.Series(c, [None if v is None else str(v) if not isinstance(v, str) else v for v in vals], dtype=pl.String)
                else:
                    data[c] = pl.Series(c, vals, dtype=pl.Float64)
            else:
                data[c] = pl.Series(c, vals, dtype=pl.String)
        return pl.DataFrame(data, height=n) if data else pl.DataFrame(height=n)

    def _frame_from_table(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(self._table_exprs(frame))

    def _table_exprs(self, frame: pl.DataFrame) -> list[pl.Expr]:
        """One expression per input column (``columns`` order, aliased to its name) turning a
        client's table into raw input columns; raises :class:`InputError` naming an unknown,
        missing or non-scalar column."""
        present = set(frame.columns)
        schema = frame.schema  # built anew on every access
        if self.unknown == "error":
            extra = [c for c in frame.columns if c not in self.known_columns]
            if extra:
                raise InputError("unknown field (not an input of this model)", field=extra[0])
        exprs = []
        for col in self.columns:
            c = col.name
            if c not in present:
                if self.missing == "error":
                    raise InputError("required field is missing", field=c)
                exprs.append(pl.lit(None, dtype=pl.String).alias(c))
                continue
            dt = schema[c]
            if col.kind == "sequence" and isinstance(dt, (pl.List, pl.Array)):
                exprs.append(pl.col(c).cast(pl.List(pl.String)).list.join(col.delimiter).alias(c))
            elif isinstance(dt, (pl.List, pl.Array, pl.Struct, pl.Object)):
                raise InputError(f"expected a scalar column, got {dt}", field=c)
            elif col.kind == "numeric" and dt.is_float():
                # NaN is how pandas marks a missing number: a missing value, like null.
                exprs.append(pl.col(c).fill_nan(None).alias(c))
            elif col.kind != "numeric" and dt.is_float():
                # 12.0 -> "12" like a record value (a float column is how pandas stores ints + NaN).
                exprs.append(
                    pl.when(pl.col(c) == pl.col(c).floor()).then(pl.col(c).cast(pl.Int64, strict=False).cast(pl.String))
                    .otherwise(pl.col(c).cast(pl.String)).alias(c)
                )
            else:
                exprs.append(pl.col(c))
        return exprs

    @staticmethod
    def _as_table(records: Any) -> pl.DataFrame | None:
        """``records`` as a Polars frame when it is a table (Polars, pyarrow, pandas), else None."""
        if isinstance(records, pl.DataFrame):
            return records
        if isinstance(records, pl.LazyFrame):
            return records.collect()
        try:
            import pyarrow as pa

            if isinstance(records, (pa.Table, pa.RecordBatch)):
                return pl.from_arrow(records)  # type: ignore[return-value]
        except ImportError:  # pragma: no cover - pyarrow is a polars extra
            pass
        if type(records).__module__.startswith("pandas"):
            return pl.from_pandas(records)
        return None

    def to_frame(self, records: Any) -> pl.DataFrame:
        """The raw input columns of ``records`` as a Polars frame (before encoding)."""
        table = self._as_table(records)
        if table is not None:
            return self._frame_from_table(table)
        if isinstance(records, Mapping):
            records = [records]
        if not isinstance(records, Sequence) or isinstance(records, (str, bytes)):
            raise InputError(f"records must be a list of dicts or a DataFrame/Table, got {type(records).__name__}")
        return self._frame_from_records(records)

    def encode(self, records: Any) -> Batch:
        """The model batch for ``records`` (the offline loader's layout)."""
        fast = self._fast if self.fast_encoding else None
        if fast is not None:
            recs = [records] if type(records) is dict else records
            table = None if type(recs) in (list, tuple) else self._as_table(records)
            try:
                if table is not None:
                    return fast.encode_table(table, self._table_exprs(table))
                if type(recs) in (list, tuple):
                    return fast.encode(recs)
            except _Fallback:
                pass  # the general path below, which owns every error message
        frame = self.to_frame(records)
        n = frame.height
        # Only text can fail to parse as a number: numeric columns that arrived as numbers skip
        # the (string-stripping) checks.
        numeric_cols = {c.name for c in self.columns if c.kind == "numeric"}
        schema = frame.schema
        checks = [c for c in self._num_checks if c[0] not in numeric_cols or schema[c[0]] == pl.String]
        if checks and n:
            row = frame.select([expr.arg_true().first().alias(str(i)) for i, (_, _, expr) in enumerate(checks)]).row(0)
            for i, hit in enumerate(row):
                if hit is not None:
                    col, problem, _ = checks[i]
                    value = frame[col][int(hit)]
                    raise InputError(f"{problem}: {value!r}", field=col, record=int(hit))
        arrays = self._plan.encode(frame)
        loader = BatchLoader(None, "predict", max(n, 1), arrays=arrays, schema=self._encode_schema, prefetch=0)
        return loader._slice(slice(0, n))

    # ------------------------------------------------------------------ scoring
    def predict_batch(self, batch: Batch) -> np.ndarray:
        """(B, T) float32 probabilities of an encoded batch."""
        if len(batch) == 0:
            return np.zeros((0, len(self.task_names)), dtype=np.float32)
        return self._run(batch)

    def predict(self, records: Any, *, as_frame: bool = False) -> dict[str, np.ndarray] | pl.DataFrame:
        """Probabilities per task for ``records``: a list of dicts (or one dict), a Polars or
        pandas DataFrame, or a pyarrow Table. ``as_frame`` returns a Polars frame with one
        ``p_<task>`` column per task instead of ``{task: array}``."""
        probs = self.predict_batch(self.encode(records))
        if as_frame:
            return pl.DataFrame({f"p_{t}": probs[:, j] for j, t in enumerate(self.task_names)})
        return {t: np.ascontiguousarray(probs[:, j]) for j, t in enumerate(self.task_names)}

    def time_backend(self, repeats: int = 30) -> dict[str, float]:
        """Median milliseconds of the model alone on batches of 1 and 256 (encoding excluded)."""
        from ctrkit.serve.export import synthetic_batch

        out = {}
        for n in (1, 256):
            b = synthetic_batch(self.schema, n, seed=3)
            self._run(b)  # warm-up
            self._run(b)
            ts = []
            for _ in range(repeats if n == 1 else max(repeats // 3, 3)):
                t0 = time.perf_counter()
                self._run(b)
                ts.append((time.perf_counter() - t0) * 1e3)
            out[f"batch_{n}"] = float(np.median(ts))
        return out

    @property
    def info(self) -> dict[str, Any]:
        """What a server reports about the loaded model."""
        m = self.metadata
        return {
            "bundle": str(self.bundle),
            "bundle_hash": m.get("bundle_hash"),
            "model": m.get("model"),
            "dataset": m.get("dataset"),
            "tasks": self.task_names,
            "backend": self.backend,
            "inputs": self.input_columns,
            "created": m.get("created"),
            "ctrkit_version": m.get("ctrkit_version"),
        }


def _make_runner(d: Path, meta: dict[str, Any], schema: FeatureSchema, backend: str, threads: int | None):
    """A function (Batch) -> (B, T) float32 numpy probabilities for ``backend``."""
    from ctrkit.serve.export import batch_tensors, input_names

    tasks = list(schema.task_names)
    seq_names = [f.name for f in schema.sequences]  # schema properties are rebuilt per access
    full_length = bool(meta.get("pad_sequences_to_max_len")) and backend != "eager"

    def tensors(b: Batch) -> tuple[torch.Tensor, ...]:
        """:func:`~ctrkit.serve.export.batch_tensors`, with the schema read once (sequences padded
        to max_len for a traced form that needs it)."""
        if schema.domain is None and not seq_names:
            return (b.ids, b.dense)
        return batch_tensors(b, schema, full_length=full_length)

    if backend == "eager":
        from ctrkit.models.registry import build_model

        model = build_model(meta["model"], schema, meta.get("model_params") or {})
        model.load_state_dict(torch.load(d / "model.pt", weights_only=True, map_location="cpu"))
        model.eval()

        def run_eager(b: Batch) -> np.ndarray:
            with torch.inference_mode():
                out = model(b)
                return torch.sigmoid(torch.stack([out.logits[t].reshape(-1) for t in tasks], 1)).numpy()

        return run_eager
    if backend in ("torchscript", "torchscript_int8"):
        if backend == "torchscript_int8":
            # The packed int8 weights were prepared for fbgemm (the x86 engine) at export.
            torch.backends.quantized.engine = "fbgemm"
        ts = torch.jit.load(str(d / meta["backends"].get(backend, {}).get("file", "model.ts")), map_location="cpu")
        ts.eval()

        def run_ts(b: Batch) -> np.ndarray:
            with torch.inference_mode():
                return ts(*tensors(b)).numpy()

        return run_ts
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if (threads or 1) > 1:
        # Idle pool threads spin by default; on a few shared cores that burns the cycles the
        # encoder and the HTTP loop need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(d / meta["backends"][backend]["file"]), opts, providers=["CPUExecutionProvider"])
    names = input_names(schema)
    wanted = {i.name for i in sess.get_inputs()}

    def run_onnx(b: Batch) -> np.ndarray:
        # InferenceSession.run is thread-safe.
        feed = {n: t.numpy() for n, t in zip(names, tensors(b)) if n in wanted}
        return sess.run(["probs"], feed)[0]

    return run_onnx


__all__ = ["BundleError", "InputError", "Predictor"]

"""Encoders fitted on the train split only, applied the same way to every split and to requests.

:class:`Encoders` holds the fitted state of a schema: a vocabulary per vocabulary owner
(categorical fields, bucketized numerics, sequences with their own vocabulary), statistics per
normalized numeric, bucket edges per quantile-bucketized numeric, and the domain vocabulary.
Everything is a Polars expression, so encoding a split is one vectorised query. Two choices keep
that query cheap: string vocabularies are applied as an ``Enum`` cast (one hash per string, about
2.5x faster than ``replace_strict``), and a criteo_log2 field is counted per distinct value and,
when its values are whole numbers in a modest range, mapped through a lookup table over that
range (each integer bucketed once, by the same Polars expression, instead of a log per row).

Id conventions: 0 is padding, 1 is out-of-vocabulary (unseen in train, or rarer than
``min_count``); real values start at 2, ordered by train frequency (ties by value) so the ids are
deterministic.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl

from ctrkit.data.readers import LINE
from ctrkit.schema import (
    NUM_RESERVED,
    OOV_ID,
    CategoricalFeature,
    FeatureSchema,
    NumericFeature,
    SequenceFeature,
)

#: Label spellings accepted as 0/1 (after trimming); anything else is an error naming the line.
_LABEL_TRUE = ["1", "1.0", "true", "True"]
_LABEL_FALSE = ["0", "0.0", "false", "False", "-1"]


def _float(col: str) -> pl.Expr:
    """The column as a finite number, null when it is not one: text, and also "nan" or "inf",
    which parse as floats but no normalizer or bucketing can use (the checks then report them,
    rather than Polars failing in the middle of an expression)."""
    x = pl.col(col).cast(pl.Float64, strict=False)
    return pl.when(x.is_finite()).then(x)


def criteo_log2(x: pl.Expr) -> pl.Expr:
    """floor(log(x)^2) for x > 2, else int(x): the Criteo winners' (and BARS') bucketing.

    ``int(x)`` truncates toward zero like FuxiCTR's Python ``int`` (``-1.5 -> -1``), which the
    Int64 cast does; flooring would give ``-2``.
    """
    return criteo_log2_int(x).cast(pl.String)


def criteo_log2_int(x: pl.Expr) -> pl.Expr:
    """:func:`criteo_log2` before its cast to the string token (Int64): counting and looking up
    integers is cheaper than strings, and ``str(int)`` maps the two one to one."""
    return pl.when(x > 2).then((x.log() ** 2).floor()).otherwise(x).cast(pl.Int64)


def _is_criteo_log2(f: object) -> bool:
    return isinstance(f, NumericFeature) and f.bucketize is not None and f.bucketize.method == "criteo_log2"


def stable_hash_bucket(values: pl.Series, buckets: int) -> pl.Series:
    """Bucket of each distinct value by CRC32, stable across processes and library versions
    (Polars' own hash is not); called on distinct values only."""
    return pl.Series([zlib.crc32(v.encode()) % buckets for v in values.to_list()], dtype=pl.Int64)


@dataclass
class Vocab:
    """A fitted vocabulary: ``values[i]`` has id ``i + 2``. ``counts`` are train frequencies.
    With ``hash_buckets`` set, ids are ``2 + crc32(value) % hash_buckets`` instead."""

    values: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    hash_buckets: int | None = None
    #: The vocabulary as an Enum type, built once (a vocabulary of a million values takes tens
    #: of milliseconds) and reused for every split.
    _enum: pl.Enum | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def size(self) -> int:
        """Rows the embedding table needs, reserved ids included."""
        return NUM_RESERVED + (self.hash_buckets if self.hash_buckets else len(self.values))

    def encode(self, expr: pl.Expr) -> pl.Expr:
        """String expression -> Int32 ids (unseen -> OOV)."""
        if self.hash_buckets:
            # Hash each distinct value once, on the Python side, through a stable function.
            return expr.map_batches(
                lambda s: _hash_series(s, self.hash_buckets or 1), return_dtype=pl.Int32
            )
        # An Enum whose categories are the vocabulary in id order: its physical code is the id
        # minus the reserved ids, and a value outside it becomes null (-> OOV). The same ids as
        # replace_strict over the strings, at less than half the cost.
        return (self._codes(expr) + NUM_RESERVED).fill_null(OOV_ID)

    def encode_filled(self, expr: pl.Expr, fill_value: str) -> pl.Expr:
        """:meth:`encode` of ``expr.fill_null(fill_value)`` without materialising the filled
        strings: a null becomes the id of ``fill_value`` directly."""
        if self.hash_buckets:
            return self.encode(expr.cast(pl.String).fill_null(fill_value))
        fill_id = self.id_of(fill_value)
        return pl.when(expr.is_null()).then(pl.lit(fill_id, dtype=pl.Int32)).otherwise(
            (self._codes(expr) + NUM_RESERVED).fill_null(OOV_ID)
        )

    def _codes(self, expr: pl.Expr) -> pl.Expr:
        if self._enum is None:
            self._enum = pl.Enum(pl.Series(self.values, dtype=pl.String))
        return expr.cast(pl.String).cast(self._enum, strict=False).to_physical().cast(pl.Int32)

    def id_of(self, value: str) -> int:
        """The id of one token (OOV when it is not in the vocabulary)."""
        try:
            return self.values.index(value) + NUM_RESERVED
        except ValueError:
            return OOV_ID

    def encode_int(self, expr: pl.Expr) -> pl.Expr | None:
        """Int64 expression whose string form is the token -> Int32 ids, the same ids as
        :meth:`encode` of the string; None when some value is not the string of an integer."""
        if self.hash_buckets:
            return None
        keys = pl.Series(self.values, dtype=pl.String)
        ints = keys.cast(pl.Int64, strict=False)
        if ints.null_count() or not ints.cast(pl.String).equals(keys):
            return None
        ids = pl.Series(np.arange(NUM_RESERVED, NUM_RESERVED + len(self.values), dtype=np.int32))
        return expr.replace_strict(ints, ids, default=OOV_ID, return_dtype=pl.Int32)


def _hash_series(s: pl.Series, buckets: int) -> pl.Series:
    uniq = s.drop_nulls().unique()
    mapping = stable_hash_bucket(uniq, buckets) + NUM_RESERVED
    return s.replace_strict(uniq, mapping.cast(pl.Int32), default=OOV_ID, return_dtype=pl.Int32)


@dataclass
class Encoders:
    """Fitted state for one schema. Build with :meth:`fit`; apply with :meth:`transform`."""

    schema: FeatureSchema
    vocabs: dict[str, Vocab] = field(default_factory=dict)  # owner -> vocab
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # numeric -> mean/std/min/max
    edges: dict[str, list[float]] = field(default_factory=dict)  # quantile-bucketized numeric
    domains: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ expressions
    def token_expr(self, f: CategoricalFeature | NumericFeature) -> pl.Expr:
        """The string token a single-valued categorical field contributes to its vocabulary."""
        if isinstance(f, CategoricalFeature):
            return pl.col(f.source).cast(pl.String).fill_null(f.fill_value)
        assert f.bucketize is not None
        x = _float(f.source).fill_null(f.fill_value)
        if f.bucketize.method == "criteo_log2":
            return criteo_log2(x)
        # Quantile buckets are ids directly; the "token" is the bucket number.
        edges = pl.Series(self.edges.get(f.name, []), dtype=pl.Float64)
        return pl.lit(edges).search_sorted(x, side="right").cast(pl.String)

    def sequence_expr(self, f: SequenceFeature) -> pl.Expr:
        """List of string tokens, empty tokens dropped, truncated to ``max_len``."""
        toks = (
            pl.col(f.source)
            .fill_null("")
            .str.split(f.delimiter)
            .list.eval(pl.element().filter(pl.element() != ""))
        )
        return toks.list.tail(f.max_len) if f.truncate == "pre" else toks.list.head(f.max_len)

    def numeric_expr(self, f: NumericFeature) -> pl.Expr:
        x = _float(f.source).fill_null(f.fill_value)
        st = self.stats.get(f.name, {})
        if f.normalizer == "standard":
            x = (x - st["mean"]) / (st["std"] if st["std"] > 0 else 1.0)
        elif f.normalizer == "minmax":
            span = st["max"] - st["min"]
            x = (x - st["min"]) / (span if span > 0 else 1.0)
        elif f.normalizer == "log":
            # Signed log1p: keeps order and sign, tames heavy tails; needs no fitted state.
            x = x.sign() * x.abs().log1p()
        return x.cast(pl.Float32)

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, schema: FeatureSchema, train: pl.LazyFrame | pl.DataFrame) -> "Encoders":
        """Fit every encoder on the train frame (one lazy query per kind of statistic, all value
        counts collected together so Polars spreads them over its threads)."""
        enc = cls(schema)
        lf = train.lazy()
        members: dict[str, list[object]] = {}
        for f in schema.categorical:
            owner = schema.vocab_owner(f.name)
            if isinstance(f, NumericFeature) and f.bucketize and f.bucketize.method == "quantile":
                continue  # fixed-size buckets, no vocabulary
            members.setdefault(owner, []).append(f)
        for f in schema.sequences:
            members.setdefault(schema.vocab_owner(f.name), []).append(f)
        # Quantile edges and normalizer statistics first: tokens of quantile fields need edges.
        enc._fit_numeric(lf)
        # Per owner, (token, count) frames of each member, summed below. An owner made only of
        # criteo_log2 numerics counts integer tokens (cast to their string tokens after counting:
        # the same counts, far fewer string operations), bucketing each distinct value once.
        owners: dict[str, list[pl.LazyFrame]] = {o: [] for o in members}
        for owner, fs in members.items():
            as_int = all(_is_criteo_log2(f) for f in fs)
            for f in fs:
                if isinstance(f, SequenceFeature):
                    toks = lf.select(enc.sequence_expr(f).explode().alias("token")).drop_nulls()
                    owners[owner].append(_value_counts(toks))
                elif as_int:
                    assert isinstance(f, NumericFeature)
                    owners[owner].append(_criteo_counts(lf, f))
                elif isinstance(f, CategoricalFeature):
                    # Count the raw values (a missing value is a group of its own) and name that
                    # group after the fill value afterwards: no filled copy of the column.
                    raw = lf.select(pl.col(f.source).cast(pl.String).alias("token"))
                    owners[owner].append(_value_counts(raw).with_columns(pl.col("token").fill_null(f.fill_value)))
                else:
                    assert isinstance(f, NumericFeature)
                    owners[owner].append(_value_counts(lf.select(enc.token_expr(f).alias("token"))))
        enc._set_vocabs(owners)
        if schema.domain:
            doms = lf.select(pl.col(schema.domain).drop_nulls().unique().sort()).collect()
            enc.domains = doms[schema.domain].to_list()
        return enc

    def _fit_numeric(self, rows: pl.LazyFrame) -> None:
        """Normalizer statistics and quantile edges from the train rows (the source columns of
        the numeric features that need them)."""
        aggs = []
        for f in self.schema.features:
            if isinstance(f, NumericFeature) and f.bucketize is None and f.normalizer in ("standard", "minmax"):
                x = _float(f.source).fill_null(f.fill_value)
                aggs += [
                    x.mean().alias(f"{f.name}|mean"),
                    x.std().alias(f"{f.name}|std"),
                    x.min().alias(f"{f.name}|min"),
                    x.max().alias(f"{f.name}|max"),
                ]
            if isinstance(f, NumericFeature) and f.bucketize and f.bucketize.method == "quantile":
                x = _float(f.source).fill_null(f.fill_value)
                q = f.bucketize.num_buckets
                aggs += [x.quantile(i / q, interpolation="linear").alias(f"{f.name}|q{i}") for i in range(1, q)]
        if not aggs:
            return
        row = rows.select(aggs).collect().row(0, named=True)
        for key, val in row.items():
            name, stat = key.split("|")
            if stat.startswith("q"):
                self.edges.setdefault(name, []).append(float(val))
            else:
                self.stats.setdefault(name, {})[stat] = float(val) if val is not None else 0.0
        for name in self.edges:
            self.edges[name] = sorted(set(self.edges[name]))

    def _set_vocabs(self, owners: dict[str, list[pl.LazyFrame]]) -> None:
        """Each owner's vocabulary from its members' (token, count) frames: the counts summed per
        token, tokens rarer than ``min_count`` dropped, the rest by count (ties by token)."""
        queries = [pl.concat(frames).group_by("token").agg(pl.col("count").sum()) for frames in owners.values()]
        counted_all = pl.collect_all(queries) if queries else []
        for owner, counts in zip(owners, counted_all):
            if counts["token"].dtype != pl.String:
                counts = counts.with_columns(pl.col("token").cast(pl.String))
            spec = self.schema.feature(owner)
            min_count = getattr(spec, "min_count", 1)
            buckets = getattr(spec, "hash_buckets", None)
            kept = counts.filter(pl.col("count") >= min_count).sort(["count", "token"], descending=[True, False])
            self.vocabs[owner] = Vocab(kept["token"].to_list(), kept["count"].to_list(), buckets)

    @classmethod
    def fit_counted(
        cls, schema: FeatureSchema, distinct: Mapping[str, pl.DataFrame], numeric_rows: pl.LazyFrame | None = None
    ) -> "Encoders":
        """:meth:`fit` from each source column's distinct raw values and their train counts
        instead of the rows: ``distinct[column]`` has the column (strings, null for a missing
        value) and ``COUNT`` (Int64). Gives the same state as :meth:`fit` on the rows.

        Normalizer statistics and quantile edges need the rows themselves: ``numeric_rows``
        holds the train values of the columns in :func:`stat_columns` (numbers, null for a
        missing value). A sequence's tokens count once per occurrence, times its value's count.
        """
        enc = cls(schema)
        if stat_columns(schema):
            if numeric_rows is None:
                raise ValueError(f"fit_counted: the train values of {stat_columns(schema)} are needed")
            enc._fit_numeric(numeric_rows)
        owners: dict[str, list[pl.LazyFrame]] = {}
        for f in schema.categorical:
            if isinstance(f, NumericFeature) and f.bucketize and f.bucketize.method == "quantile":
                continue  # fixed-size buckets, no vocabulary
            frame = distinct[f.source].lazy()
            tokens = frame.select(enc.token_expr(f).alias("token"), pl.col(COUNT).alias("count"))
            owners.setdefault(schema.vocab_owner(f.name), []).append(tokens)
        for f in schema.sequences:
            frame = distinct[f.source].lazy()
            tokens = frame.select(enc.sequence_expr(f).alias("token"), pl.col(COUNT).alias("count"))
            owners.setdefault(schema.vocab_owner(f.name), []).append(tokens.explode("token").drop_nulls("token"))
        enc._set_vocabs(owners)
        if schema.domain:
            seen = distinct[schema.domain].filter(pl.col(COUNT) > 0)
            enc.domains = seen.select(pl.col(schema.domain).cast(pl.String).drop_nulls().unique().sort()).to_series().to_list()
        return enc

    def fitted_schema(self) -> FeatureSchema:
        """The schema with vocabulary sizes (and the number of domains) filled in."""
        sizes = {o: v.size for o, v in self.vocabs.items()}
        for f in self.schema.categorical:
            if isinstance(f, NumericFeature) and f.bucketize and f.bucketize.method == "quantile":
                sizes[f.name] = NUM_RESERVED + len(self.edges.get(f.name, [])) + 1
        s = self.schema.with_vocab_sizes(sizes)
        if self.schema.domain:
            s = s.model_copy(update={"num_domains": len(self.domains)})
        return s

    # ------------------------------------------------------------------ transform
    def id_exprs(self) -> list[pl.Expr]:
        """One Int32 id expression per ``schema.categorical`` field (local ids, no offsets)."""
        out = []
        for f in self.schema.categorical:
            if isinstance(f, NumericFeature) and f.bucketize and f.bucketize.method == "quantile":
                edges = pl.Series(self.edges.get(f.name, []), dtype=pl.Float64)
                x = _float(f.source).fill_null(f.fill_value)
                e = (pl.lit(edges).search_sorted(x, side="right").cast(pl.Int32) + NUM_RESERVED)
            else:
                vocab = self.vocabs[self.schema.vocab_owner(f.name)]
                e_int = None
                if _is_criteo_log2(f):
                    assert isinstance(f, NumericFeature)
                    e_int = vocab.encode_int(criteo_log2_int(_float(f.source).fill_null(f.fill_value)))
                if e_int is not None:
                    e = e_int
                elif isinstance(f, CategoricalFeature):
                    e = vocab.encode_filled(pl.col(f.source), f.fill_value)
                else:
                    e = vocab.encode(self.token_expr(f))
            out.append(e.alias(f.name))
        return out

    def id_columns(self, frame: pl.DataFrame) -> list[np.ndarray]:
        """The ids of :meth:`id_exprs` for an in-memory frame, one Int32 array per
        ``schema.categorical`` field, in one Polars query: whole-number criteo_log2 columns
        through a lookup table over their value range, everything else by its expression."""
        fields = self.schema.categorical
        if not fields:
            return []
        tables = self._criteo_tables(frame, [f for f in fields if _is_criteo_log2(f)])
        got = frame.select([tables.get(f.name, e) for f, e in zip(fields, self.id_exprs())])
        return [got[f.name].cast(pl.Int32).to_numpy() for f in fields]

    def _criteo_tables(self, frame: pl.DataFrame, fields: list[CategoricalFeature | NumericFeature]) -> dict[str, pl.Expr]:
        """Id expressions gathering from a table indexed by ``value - min`` (each integer of the
        range bucketed and looked up once), for the criteo_log2 fields whose values are all
        whole numbers in a range of at most ``_TABLE_LIMIT``; one query finds which those are."""
        xs = {f.name: _criteo_input(frame, f) for f in fields if isinstance(f, NumericFeature)}
        if not xs or frame.height == 0:
            return {}
        ints = {n for n, (_, is_int) in xs.items() if is_int}
        stats = frame.select(
            [e for n, (x, _) in xs.items() for e in (
                x.min().alias(f"{n}|lo"), x.max().alias(f"{n}|hi"),
                (pl.lit(True) if n in ints else ((x == x.floor()) & x.is_finite()).all()).alias(f"{n}|whole"),
            )]  # fmt: skip
        ).row(0, named=True)
        out = {}
        for name, (x, _) in xs.items():
            lo, hi, whole = stats[f"{name}|lo"], stats[f"{name}|hi"], stats[f"{name}|whole"]
            if not whole or hi - lo >= _TABLE_LIMIT or max(abs(lo), abs(hi)) >= 2.0**53:
                continue
            lo, hi = int(lo), int(hi)
            tokens = pl.DataFrame({"t": _criteo_tokens(np.arange(lo, hi + 1, dtype=np.int64))})
            e = self.vocabs[self.schema.vocab_owner(name)].encode_int(pl.col("t"))
            if e is None:
                continue
            table = tokens.select(e).to_series()
            out[name] = pl.lit(table).gather((x - lo).cast(pl.Int64)).alias(name)
        return out

    def sequence_id_expr(self, f: SequenceFeature) -> pl.Expr:
        vocab = self.vocabs[self.schema.vocab_owner(f.name)]
        return self.sequence_expr(f).list.eval(vocab.encode(pl.element())).alias(f.name)

    def label_exprs(self) -> list[pl.Expr]:
        out = []
        for t in self.schema.tasks:
            c = pl.col(t.source).cast(pl.String).str.strip_chars()
            out.append(
                pl.when(c.is_in(_LABEL_TRUE)).then(1.0).when(c.is_in(_LABEL_FALSE)).then(0.0)
                .otherwise(None).cast(pl.Float32).alias(f"label:{t.name}")
            )
        return out

    def domain_expr(self) -> pl.Expr:
        d = self.schema.domain
        assert d is not None
        keys = pl.Series(self.domains, dtype=pl.String)
        ids = pl.Series(np.arange(len(self.domains), dtype=np.int32))
        return pl.col(d).cast(pl.String).replace_strict(keys, ids, default=None, return_dtype=pl.Int32).alias("__domain")

    def group_expr(self) -> pl.Expr:
        # Groups only need to be told apart within a split, including groups unseen in train,
        # so hash the raw value rather than using a train vocabulary.
        g = self.schema.group
        assert g is not None
        return pl.col(g).cast(pl.String).hash(seed=0).reinterpret(signed=True).alias("__group")

    def validation_exprs(self) -> list[tuple[str, str, pl.Expr]]:
        """(column, problem, boolean expression true on a bad row) for every checkable column."""
        checks: list[tuple[str, str, pl.Expr]] = []
        for f in self.schema.features:
            if isinstance(f, NumericFeature):
                raw = pl.col(f.source).cast(pl.String).str.strip_chars()
                bad = raw.is_not_null() & (raw != "") & _float(f.source).is_null()
                checks.append((f.source, "is not a finite number", bad))
        for t in self.schema.tasks:
            c = pl.col(t.source).cast(pl.String).str.strip_chars()
            checks.append((t.source, "label is not 0/1", ~c.is_in(_LABEL_TRUE + _LABEL_FALSE) | c.is_null()))
        if self.schema.domain:
            # A row without a domain cannot be routed (its id would be garbage, not an error).
            checks.append((self.schema.domain, "domain is missing", pl.col(self.schema.domain).is_null()))
        if self.schema.domain and self.domains:  # only once fitted: train defines the domains
            # (a list, not a Series: is_in over a same-typed Series is deprecated as ambiguous)
            unseen = ~pl.col(self.schema.domain).cast(pl.String).is_in(list(self.domains)) & pl.col(self.schema.domain).is_not_null()
            checks.append((self.schema.domain, "domain unseen in train", unseen))
        return checks

    def validation_candidates(self) -> pl.Expr:
        """True on every row that some expression of :meth:`validation_exprs` may flag (and on few
        others): a cheap filter to run first, so the full checks (which strip every numeric string)
        only see the rows it lets through; on clean data, none."""
        cands: list[pl.Expr] = []
        for f in self.schema.features:
            if isinstance(f, NumericFeature):
                # bad needs a non-null raw value that does not parse (the strip test comes after)
                cands.append(_float(f.source).is_null() & pl.col(f.source).is_not_null())
        cands += [bad for col, _, bad in self.validation_exprs() if not self._is_numeric_source(col)]
        return pl.any_horizontal(cands) if cands else pl.lit(False)

    def _is_numeric_source(self, col: str) -> bool:
        return any(isinstance(f, NumericFeature) and f.source == col for f in self.schema.features)

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        return {
            "schema": self.schema.to_dict(),
            "vocabs": {
                o: {"values": v.values, "counts": v.counts, "hash_buckets": v.hash_buckets} for o, v in self.vocabs.items()
            },
            "stats": self.stats,
            "edges": self.edges,
            "domains": self.domains,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Encoders":
        return cls(
            schema=FeatureSchema.from_dict(state["schema"]),
            vocabs={
                o: Vocab(v["values"], v["counts"], v.get("hash_buckets")) for o, v in state["vocabs"].items()
            },
            stats=state["stats"],
            edges=state["edges"],
            domains=state["domains"],
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_state()))

    @classmethod
    def load(cls, path: str | Path) -> "Encoders":
        return cls.from_state(json.loads(Path(path).read_text()))


#: The count column of :meth:`Encoders.fit_counted`'s frames (a name no source column takes).
COUNT = "__count"


def stat_columns(schema: FeatureSchema) -> list[str]:
    """Source columns whose train values (not only their distinct values) the fit needs: those
    of normalized (standard, min-max) and quantile-bucketized numerics."""
    cols: list[str] = []
    for f in schema.features:
        if not isinstance(f, NumericFeature):
            continue
        quantile = f.bucketize is not None and f.bucketize.method == "quantile"
        if (quantile or (f.bucketize is None and f.normalizer in ("standard", "minmax"))) and f.source not in cols:
            cols.append(f.source)
    return cols


def _value_counts(tokens: pl.LazyFrame) -> pl.LazyFrame:
    """(token, count) of a one-column ``token`` frame, count as Int64 (summed over members)."""
    return tokens.group_by("token").agg(pl.len().cast(pl.Int64).alias("count"))


#: A whole-number column is looked up through a table when its values span at most this many
#: integers (4 Mi entries: 16 MB of int32, computed once per split and column).
_TABLE_LIMIT = 1 << 22


def _criteo_tokens(values: np.ndarray) -> np.ndarray:
    """criteo_log2 tokens (int64) of whole numbers, by the same Polars expression as every other
    path, so a table built from them gives exactly the ids the expression would."""
    x = pl.Series("x", values.astype(np.float64))
    return x.to_frame().select(criteo_log2_int(pl.col("x"))).to_series().to_numpy()


def _criteo_input(frame: pl.DataFrame | pl.LazyFrame, f: NumericFeature) -> tuple[pl.Expr, bool]:
    """The filled values of a criteo_log2 field, and whether they are integers: an integer
    column (parsed as such) with a whole fill value stays integer, anything else is Float64.
    Both give the same buckets (an integer converts to the nearest double, as its text does)."""
    dtype = frame.collect_schema()[f.source] if isinstance(frame, pl.LazyFrame) else frame.schema[f.source]
    if dtype.is_integer() and float(f.fill_value).is_integer():
        return pl.col(f.source).cast(pl.Int64).fill_null(int(f.fill_value)), True
    return _float(f.source).fill_null(f.fill_value), False


def _criteo_counts(frame: pl.LazyFrame, f: NumericFeature) -> pl.LazyFrame:
    """(token, count) of a criteo_log2 field: the distinct (filled) values are counted first and
    each is bucketed once, instead of bucketing every row and counting the buckets."""
    x, _ = _criteo_input(frame, f)
    distinct = frame.group_by(x.alias("x")).agg(pl.len().cast(pl.Int64).alias("count"))
    tokens = distinct.select(criteo_log2_int(pl.col("x").cast(pl.Float64)).alias("token"), "count")
    return tokens.group_by("token").agg(pl.col("count").sum())


def first_bad_row(frame: pl.LazyFrame, checks: list[tuple[str, str, pl.Expr]]) -> tuple[str, str, int, str] | None:
    """The first (column, problem, line, value) failing any check, or None; one query."""
    if not checks:
        return None
    aggs = [pl.col(LINE).filter(bad).min().alias(f"{i}") for i, (_, _, bad) in enumerate(checks)]
    row = frame.select(aggs).collect().row(0)
    hits = [(line, i) for i, line in enumerate(row) if line is not None]
    if not hits:
        return None
    line, i = min(hits)
    col, problem, _ = checks[i]
    value = frame.filter(pl.col(LINE) == line).select(pl.col(col).cast(pl.String)).collect().item()
    return col, problem, int(line), value


def bad_row_mask(checks: list[tuple[str, str, pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
    """(any-bad boolean, reason string) expressions for the skip-bad-rows mode."""
    if not checks:
        return pl.lit(False), pl.lit(None, dtype=pl.String)
    any_bad = pl.any_horizontal([b for _, _, b in checks])
    reason = pl.coalesce(
        [pl.when(b).then(pl.lit(f"column '{c}': {p}")) for c, p, b in checks]
    )
    return any_bad, reason


__all__ = ["COUNT", "Encoders", "Vocab", "bad_row_mask", "criteo_log2", "first_bad_row", "stat_columns"]

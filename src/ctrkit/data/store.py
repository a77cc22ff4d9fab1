"""The encoded column store: each split written once as fixed-width arrays, memory-mapped after.

Layout of a store directory::

    manifest.json        schema (fitted), sources (size, content hash), per-split counts, version
    encoders.json        fitted encoder state (vocabularies, statistics, bucket edges, domains)
    <split>/ids.npy      (N, F) int32 local ids, one column per single-valued categorical field
    <split>/dense.npy    (N, M) float32 numeric fields
    <split>/labels.npy   (N, T) float32
    <split>/group.npy    (N,) int64       (when the schema has a group column)
    <split>/domain.npy   (N,) int32       (when the schema has a domain column)
    <split>/seq.<name>.values.npy (total,) int32 and .offsets.npy (N + 1,) int64
    rejects/<split>.csv  rows skipped in the skip-bad-rows mode, with line number and reason

The store is written into a temporary directory beside the target and renamed into place only
when complete, so a killed run never leaves a store that looks finished. Its fingerprint covers
the schema, the read options, the content hash of every source and the store format; a run with
the same inputs reuses it, any change rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Mapping

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from ctrkit import __version__
from ctrkit.data.encoders import Encoders, bad_row_mask, first_bad_row
from ctrkit.data.readers import LINE, SourceFile, bad_line_set, check_structure, scan
from ctrkit.errors import DataError
from ctrkit.schema import OOV_ID, FeatureSchema

STORE_FORMAT = 1
SPLITS = ("train", "valid", "test")
#: Files up to this size are parsed once into memory and every pass runs on that frame; larger
#: files are re-scanned lazily with Polars' streaming engine for each pass.
IN_MEMORY_LIMIT = 8 << 30

BadRows = Literal["error", "skip"]


@dataclass(frozen=True)
class DataSpec:
    """What to encode: a schema, the raw file of each split, and how to treat bad rows."""

    schema: FeatureSchema
    sources: Mapping[str, SourceFile]  # split name -> file; must contain "train"
    on_bad_rows: BadRows = "error"
    name: str = "custom"


def file_digest(path: Path, cache: Mapping[str, object] | None = None) -> str:
    """blake2b of the file content; reuses ``cache['blake2b']`` when size and mtime match."""
    st = path.stat()
    if cache and cache.get("size") == st.st_size and cache.get("mtime_ns") == st.st_mtime_ns:
        return str(cache["blake2b"])
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _source_info(src: SourceFile, cached: Mapping[str, object] | None) -> dict[str, object]:
    st = src.path.stat()
    return {
        "path": str(src.path),
        "format": src.format,
        "header": src.header,
        "columns": list(src.columns) if src.columns else None,
        "separator": src.sep,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "blake2b": file_digest(src.path, cached),
    }


def _fingerprint(spec: DataSpec, sources: Mapping[str, Mapping[str, object]]) -> str:
    key = {
        "store_format": STORE_FORMAT,
        "ctrkit": __version__,
        "schema": spec.schema.to_dict(),
        "on_bad_rows": spec.on_bad_rows,
        "sources": {
            s: {k: v for k, v in info.items() if k not in ("path", "mtime_ns")} for s, info in sources.items()
        },
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


@dataclass
class SplitArrays:
    """Memory-mapped arrays of one split (see the module docstring for shapes)."""

    ids: np.ndarray
    dense: np.ndarray
    labels: np.ndarray
    group: np.ndarray | None = None
    domain: np.ndarray | None = None
    seq_values: dict[str, np.ndarray] = field(default_factory=dict)
    seq_offsets: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class Store:
    """An encoded dataset on disk. Open with :meth:`open`; build with :func:`build_store`."""

    def __init__(self, directory: Path, manifest: dict):
        self.dir = directory
        self.manifest = manifest
        self.schema = FeatureSchema.from_dict(manifest["schema"])
        self._encoders: Encoders | None = None

    @classmethod
    def open(cls, directory: str | Path) -> "Store":
        d = Path(directory)
        m = d / "manifest.json"
        if not m.exists():
            raise DataError("not a complete ctrkit store (no manifest.json)", file=d)
        return cls(d, json.loads(m.read_text()))

    @property
    def encoders(self) -> Encoders:
        if self._encoders is None:
            self._encoders = Encoders.load(self.dir / "encoders.json")
        return self._encoders

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    def rows(self, split: str) -> int:
        return int(self.manifest["splits"][split]["rows"])

    def arrays(self, split: str) -> SplitArrays:
        if split not in self.manifest["splits"]:
            raise KeyError(f"store has no split '{split}' (splits: {self.splits})")
        d = self.dir / split

        def load(name: str) -> np.ndarray:
            return np.load(d / name, mmap_mode="r")

        arr = SplitArrays(ids=load("ids.npy"), dense=load("dense.npy"), labels=load("labels.npy"))
        if (d / "group.npy").exists():
            arr.group = load("group.npy")
        if (d / "domain.npy").exists():
            arr.domain = load("domain.npy")
        for f in self.schema.sequences:
            arr.seq_values[f.name] = load(f"seq.{f.name}.values.npy")
            arr.seq_offsets[f.name] = load(f"seq.{f.name}.offsets.npy")
        return arr


def build_store(
    spec: DataSpec, directory: str | Path, *, force: bool = False, progress: bool = True
) -> Store:
    """Encode every split of ``spec`` into ``directory`` (reused when its fingerprint matches)."""
    target = Path(directory)
    if "train" not in spec.sources:
        raise DataError("a dataset needs a 'train' split (encoders are fitted on it)")
    old = None
    if (target / "manifest.json").exists():
        try:
            old = json.loads((target / "manifest.json").read_text())
        except json.JSONDecodeError:
            old = None
    cached = (old or {}).get("sources", {})
    if old is not None and not force:
        # Deciding whether the old store can be reused needs every content hash first.
        sources = {s: _source_info(src, cached.get(s)) for s, src in spec.sources.items()}
        fp = _fingerprint(spec, sources)
        if old.get("fingerprint") == fp:
            return Store(target, old)
        known: tuple[dict[str, dict[str, object]], str] | None = (sources, fp)
    else:
        for src in spec.sources.values():
            src.path.stat()  # a missing file fails here, as when the hashes came first
        known = None
    # The swap below deletes what is at ``target``: only ever an older store (or nothing).
    if target.exists() and not (target / "manifest.json").exists() and (not target.is_dir() or any(target.iterdir())):
        raise DataError("exists and is not a ctrkit store (no manifest.json); refusing to replace it", file=target)

    # Otherwise the hashes are only needed for the manifest: one background thread computes them
    # while the store is built (hashlib and file reads release the GIL).
    pool = ThreadPoolExecutor(max_workers=1) if known is None else None
    pending = {s: pool.submit(_source_info, src, cached.get(s)) for s, src in spec.sources.items()} if pool else {}

    def identity() -> tuple[dict[str, dict[str, object]], str]:
        if known is not None:
            return known
        sources = {s: f.result() for s, f in pending.items()}
        return sources, _fingerprint(spec, sources)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        manifest = _write_store(spec, tmp, identity, progress)
        # Swap into place: the old store (if any) is moved aside first, then removed.
        trash = None
        if target.exists():
            trash = target.parent / f".{target.name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(target, trash)
        os.replace(tmp, target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    return Store(target, manifest)


def _load_frame(src: SourceFile, needed: list[str], drop_lines: list[int]) -> pl.LazyFrame:
    lf = scan(src, needed)
    if drop_lines:
        lf = lf.filter(~pl.col(LINE).is_in(drop_lines))
    if src.path.stat().st_size <= IN_MEMORY_LIMIT:
        # Parse once; every later pass (checks, fit, encode) runs on the in-memory frame.
        return lf.collect().lazy()
    return lf


def _write_store(
    spec: DataSpec,
    out: Path,
    identity: Callable[[], tuple[dict[str, dict[str, object]], str]],
    progress: bool,
) -> dict:
    schema = spec.schema
    needed = schema.source_columns
    splits = [s for s in SPLITS if s in spec.sources] + [s for s in spec.sources if s not in SPLITS]
    bar = tqdm(total=len(splits) * 3, desc=f"encode {spec.name}", disable=not progress, leave=False)
    frames: dict[str, pl.LazyFrame] = {}
    rejects: dict[str, pl.DataFrame] = {}
    for split in splits:
        src = spec.sources[split]
        bar.set_postfix_str(f"{split}: read")
        if spec.on_bad_rows == "error":
            rep = check_structure(src, max_report=1)
            if rep.bad_lines:
                raise DataError(
                    f"row has {rep.bad_counts[0]} fields, expected {rep.expected}", file=src.path, line=rep.bad_lines[0]
                )
            frames[split] = _load_frame(src, needed, [])
        else:
            rep, raw = bad_line_set(src)
            frames[split] = _load_frame(src, needed, rep.bad_lines)
            rejects[split] = raw.select(
                pl.col(LINE).alias("line"),
                pl.lit(f"wrong number of fields (expected {rep.expected})").alias("reason"),
                pl.col("raw"),
            )
        bar.update()

    def checked(split: str, enc: Encoders) -> pl.LazyFrame:
        """The split's rows that pass every check; errors name file/line/column in error mode."""
        src = spec.sources[split]
        checks = enc.validation_exprs()
        if spec.on_bad_rows == "error":
            # Only rows a cheap filter lets through can fail a check: the full checks run on those.
            bad = first_bad_row(frames[split].filter(enc.validation_candidates()), checks)
            if bad is not None:
                col, problem, line, value = bad
                raise DataError(f"{problem}: {value!r}", file=src.path, line=line, column=col)
            return frames[split]
        any_bad, reason = bad_row_mask(checks)
        tagged = frames[split].with_columns(any_bad.alias("__bad"), reason.alias("__reason"))
        bad_rows = tagged.filter(pl.col("__bad")).collect()
        if bad_rows.height:
            rows_txt = bad_rows.select(
                pl.col(LINE).alias("line"),
                pl.col("__reason").alias("reason"),
                pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in needed], separator=src.sep).alias("raw"),
            )
            rejects[split] = pl.concat([rejects.get(split, rows_txt.clear()), rows_txt])
        return tagged.filter(~pl.col("__bad")).drop("__bad", "__reason")

    # Fit on train only. Checks that need fitted state (unseen domains) run after fitting.
    bar.set_postfix_str("train: fit")
    pre = Encoders(schema)
    train = checked("train", pre)
    enc = Encoders.fit(schema, train)
    fitted = enc.fitted_schema()
    bar.update()

    split_info: dict[str, dict] = {}
    for split in splits:
        bar.set_postfix_str(f"{split}: encode")
        # Train was checked before fitting; a domain seen in train is never unseen in train.
        frame = train if split == "train" else checked(split, enc)
        info = _encode_split(enc, fitted, frame, out / split)
        info["rejected"] = int(rejects[split].height) if split in rejects else 0
        split_info[split] = info
        bar.update()
    bar.close()

    if rejects:
        (out / "rejects").mkdir()
        for split, df in rejects.items():
            df.sort("line").write_csv(out / "rejects" / f"{split}.csv")
    enc.save(out / "encoders.json")
    sources, fp = identity()  # (source info with content hashes, fingerprint)
    manifest = {
        "store_format": STORE_FORMAT,
        "ctrkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "name": spec.name,
        "fingerprint": fp,
        "schema": fitted.to_dict(),
        "on_bad_rows": spec.on_bad_rows,
        "sources": dict(sources),
        "splits": split_info,
    }
    # The manifest is written last: its presence marks the store complete.
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def encode_frame(enc: Encoders, schema: FeatureSchema, frame: pl.LazyFrame, *, with_labels: bool = True) -> SplitArrays:
    """Encode a (checked) frame into in-memory arrays with fitted encoders: one Polars query."""
    exprs = enc.id_exprs() + [enc.numeric_expr(f).alias(f"num:{f.name}") for f in schema.numeric]
    if with_labels:
        exprs += enc.label_exprs()
    exprs += [enc.sequence_id_expr(f) for f in schema.sequences]
    if schema.group:
        exprs.append(enc.group_expr())
    if schema.domain:
        exprs.append(enc.domain_expr())
    df = frame.select(exprs).collect()
    n = df.height
    arr = SplitArrays(
        ids=_matrix(df, [f.name for f in schema.categorical], np.int32, n),
        dense=_matrix(df, [f"num:{f.name}" for f in schema.numeric], np.float32, n),
        labels=_matrix(df, [f"label:{t}" for t in schema.task_names] if with_labels else [], np.float32, n),
    )
    if schema.group:
        arr.group = df["__group"].to_numpy().astype(np.int64)
    if schema.domain:
        arr.domain = df["__domain"].to_numpy().astype(np.int32)
    for f in schema.sequences:
        col = df[f.name]
        lengths = col.list.len().fill_null(0).to_numpy().astype(np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        arr.seq_values[f.name] = col.explode().drop_nulls().to_numpy().astype(np.int32)
        arr.seq_offsets[f.name] = offsets
    return arr


def _encode_split(enc: Encoders, schema: FeatureSchema, frame: pl.LazyFrame, out: Path) -> dict:
    out.mkdir()
    arr = encode_frame(enc, schema, frame)
    n = len(arr)
    np.save(out / "ids.npy", arr.ids)
    np.save(out / "dense.npy", arr.dense)
    np.save(out / "labels.npy", arr.labels)
    if arr.group is not None:
        np.save(out / "group.npy", arr.group)
    if arr.domain is not None:
        np.save(out / "domain.npy", arr.domain)
    seq_info = {}
    for f in schema.sequences:
        values, offsets = arr.seq_values[f.name], arr.seq_offsets[f.name]
        np.save(out / f"seq.{f.name}.values.npy", values)
        np.save(out / f"seq.{f.name}.offsets.npy", offsets)
        seq_info[f.name] = {
            "mean_length": float(np.diff(offsets).mean()) if n else 0.0,
            "oov": int((values == OOV_ID).sum()),
            "items": int(values.size),
        }
    cat_names = [f.name for f in schema.categorical]
    oov = (arr.ids == OOV_ID).sum(axis=0) if n else np.zeros(len(cat_names), dtype=np.int64)
    return {
        "rows": n,
        "positives": {t: int(arr.labels[:, i].sum()) for i, t in enumerate(schema.task_names)},
        "oov": {name: int(oov[i]) for i, name in enumerate(cat_names)},
        "sequences": seq_info,
    }


def _matrix(df: pl.DataFrame, cols: list[str], dtype: type, n: int) -> np.ndarray:
    if not cols:
        return np.zeros((n, 0), dtype=dtype)
    return np.ascontiguousarray(df.select(cols).to_numpy().astype(dtype, copy=False))

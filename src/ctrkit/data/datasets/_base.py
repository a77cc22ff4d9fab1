"""What every dataset adapter shares: expected files with published checksums, locating them in a
local directory, verifying them, derived files for preprocessing the schema cannot express, and
turning all of it into a :class:`~ctrkit.data.store.DataSpec`.

An adapter never downloads anything by itself (see :mod:`ctrkit.data.datasets._download`): it
takes a local directory, finds the files a BARS split consists of, and applies the published
split and preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import polars as pl

from ctrkit.data.encoders import Encoders, first_bad_row
from ctrkit.data.readers import LINE, Format, SourceFile, bad_line_set, check_structure, scan, source_file
from ctrkit.data.store import BadRows, DataSpec
from ctrkit.errors import DataError
from ctrkit.schema import FeatureSchema

SPLITS = ("train", "valid", "test")
#: Bumped when a derived file's content would change for the same raw file.
DERIVED_FORMAT = 1


@dataclass(frozen=True)
class FileSpec:
    """One expected file of a dataset.

    ``md5`` is the published checksum (reczoo/Datasets READMEs), or None where none is published.
    ``rows`` is the published number of data rows (header excluded). ``alternates`` are other names
    accepted for the same split when the official name is absent (for instance a locally
    reconstructed file); such a file is *not* the published one and ``verify`` refuses it.
    """

    split: str
    name: str
    md5: str | None = None
    rows: int | None = None
    alternates: tuple[str, ...] = ()
    format: Format | None = None
    header: bool = True
    columns: tuple[str, ...] | None = None
    separator: str | None = None

    def source(self, path: Path) -> SourceFile:
        """How to read this file when it lives at ``path``."""
        return source_file(
            path, format=self.format, header=self.header, columns=self.columns, separator=self.separator
        )


def md5_file(path: str | Path, *, progress: bool = False) -> str:
    """Hex md5 of a file's bytes (read in 8 MiB chunks, with an optional progress bar)."""
    from tqdm.auto import tqdm

    p = Path(path)
    h = hashlib.md5(usedforsecurity=False)
    with open(p, "rb") as fh, tqdm(
        total=p.stat().st_size, unit="B", unit_scale=True, desc=f"md5 {p.name}", disable=not progress, leave=False
    ) as bar:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def default_work_dir(name: str, source_dir: str | Path) -> Path:
    """Where derived files of ``name`` built from ``source_dir`` go unless told otherwise:
    ``$CTRKIT_CACHE`` (default ``~/.cache/ctrkit``) ``/derived/<name>-<hash of the source path>``."""
    root = Path(os.environ.get("CTRKIT_CACHE") or Path.home() / ".cache" / "ctrkit")
    key = hashlib.sha1(str(Path(source_dir).resolve()).encode()).hexdigest()[:10]
    return root / "derived" / f"{name}-{key}"


class DatasetAdapter:
    """A built-in dataset: its files, the BARS schema and preprocessing, and a :class:`DataSpec`.

    Subclasses set the class attributes and implement :meth:`schema`; adapters whose preprocessing
    needs new columns (Avazu's calendar fields, KKBox's country code) override :meth:`preprocess`.
    """

    #: Registry name (``ctrkit data prepare NAME``).
    name: str = ""
    #: The BARS / reczoo dataset id, e.g. ``Frappe_x1``.
    title: str = ""
    #: One line for ``ctrkit data list``.
    summary: str = ""
    #: Where the split and the preprocessing are published.
    reference: str = ""
    #: The files of the split (one per split).
    files: tuple[FileSpec, ...] = ()
    #: Public archives (zip) holding the files, tried in order by ``download``.
    urls: tuple[str, ...] = ()
    #: BARS' fixed embedding size for this benchmark setting (a model setting, given for reference).
    embedding_dim: int | None = None

    # ------------------------------------------------------------------ description
    def schema(self) -> FeatureSchema:
        """The feature schema with BARS' preprocessing (min counts, bucketing, sequences)."""
        raise NotImplementedError

    def file_spec(self, split: str) -> FileSpec:
        for f in self.files:
            if f.split == split:
                return f
        raise KeyError(f"{self.name} has no split '{split}' (splits: {[f.split for f in self.files]})")

    def info(self) -> dict[str, Any]:
        """A JSON-able description (name, title, files with checksums and row counts, urls)."""
        return {
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "reference": self.reference,
            "embedding_dim": self.embedding_dim,
            "files": [
                {"split": f.split, "name": f.name, "md5": f.md5, "rows": f.rows, "alternates": list(f.alternates)}
                for f in self.files
            ],
            "urls": list(self.urls),
        }

    def _how_to_get(self) -> str:
        hint = f"get the {self.title or self.name} files with `ctrkit data download {self.name} --out DIR`"
        if self.urls:
            hint += f" (or from {self.urls[0]})"
        return hint

    # ------------------------------------------------------------------ locating and verifying
    def locate(self, source_dir: str | Path, *, paths: Mapping[str, str | Path] | None = None) -> dict[str, Path]:
        """The file of every split in ``source_dir`` (``paths`` overrides single splits).

        Raises :class:`DataError` naming the missing file and where to get it.
        """
        base = Path(source_dir)
        if not base.is_dir():
            raise DataError(f"source directory does not exist; {self._how_to_get()}", file=base)
        found: dict[str, Path] = {}
        for f in self.files:
            if paths and f.split in paths:
                p = Path(paths[f.split])
                if not p.exists():
                    raise DataError(f"file given for split '{f.split}' does not exist", file=p)
                found[f.split] = p
                continue
            for name in (f.name, *f.alternates):
                if (base / name).exists():
                    found[f.split] = base / name
                    break
            else:
                raise DataError(
                    f"missing file '{f.name}' (the {f.split} split of {self.title or self.name}); {self._how_to_get()}",
                    file=base / f.name,
                )
        return found

    def verify(self, paths: Mapping[str, Path], *, progress: bool = False) -> dict[str, str]:
        """Check every file against its published md5.

        Returns split -> ``"ok"`` or ``"no published checksum"``; raises :class:`DataError` on a
        mismatch or on a file found under an alternate name (not the published file).
        """
        status: dict[str, str] = {}
        for split, p in paths.items():
            spec = self.file_spec(split)
            if spec.md5 is None:
                status[split] = "no published checksum"
                continue
            if p.name != spec.name and p.name in spec.alternates:
                raise DataError(
                    f"this is not the published {spec.name} of {self.title} (an alternate name, md5 "
                    f"{spec.md5} cannot match); verification refused",
                    file=p,
                )
            got = md5_file(p, progress=progress)
            if got != spec.md5:
                raise DataError(f"md5 mismatch: expected {spec.md5} (published), got {got}", file=p)
            status[split] = "ok"
        return status

    # ------------------------------------------------------------------ to a DataSpec
    def preprocess(
        self, paths: Mapping[str, Path], work_dir: Path, on_bad_rows: BadRows, *, progress: bool = False
    ) -> dict[str, SourceFile]:
        """How the store reads each split. The default reads the located files as they are."""
        return {s: self.file_spec(s).source(p) for s, p in paths.items()}

    def data_spec(
        self,
        source_dir: str | Path,
        *,
        verify: bool = False,
        work_dir: str | Path | None = None,
        on_bad_rows: BadRows = "error",
        paths: Mapping[str, str | Path] | None = None,
        progress: bool = False,
    ) -> DataSpec:
        """The :class:`DataSpec` of the dataset in ``source_dir``.

        ``verify`` checks published md5s first. ``work_dir`` receives derived files (raw splits,
        preprocessed columns) where an adapter needs them; default :func:`default_work_dir`.
        """
        located = self.locate(source_dir, paths=paths)
        if verify:
            self.verify(located, progress=progress)
        wd = Path(work_dir) if work_dir is not None else default_work_dir(self.name, source_dir)
        sources = self.preprocess(located, wd, on_bad_rows, progress=progress)
        return DataSpec(self.schema(), sources, on_bad_rows=on_bad_rows, name=self.name)

    def __repr__(self) -> str:
        return f"<dataset {self.name}: {self.title}>"


# ====================================================================== schema helpers
def categorical(names: Sequence[str], *, min_count: int = 1) -> list[dict[str, Any]]:
    return [{"name": n, "kind": "categorical", "min_count": min_count} for n in names]


def make_schema(features: list[dict[str, Any]], label: str) -> FeatureSchema:
    """A schema with one binary task ``click`` read from column ``label``."""
    return FeatureSchema.from_dict({"features": features, "tasks": [{"name": "click", "column": label}]})


# ====================================================================== derived files
def derive(
    src: SourceFile,
    out: Path,
    *,
    schema: FeatureSchema,
    raw_columns: list[str],
    exprs: list[pl.Expr],
    checks: Sequence[tuple[str, str, pl.Expr]] = (),
    on_bad_rows: BadRows = "error",
    key: Mapping[str, Any] | None = None,
) -> tuple[SourceFile, int]:
    """Write ``out`` (Parquet): the rows of ``src`` with ``exprs`` applied (columns the schema
    cannot compute itself, e.g. calendar fields), once; reused while ``src`` is unchanged.

    Errors keep pointing at the raw file: in ``error`` mode the raw rows are checked first
    (field counts, then ``checks`` plus the schema's own label/number checks computed on the raw
    columns) and the first bad one raises :class:`DataError` naming the raw file, line and column.
    In ``skip`` mode rows with a wrong number of fields are dropped and written with their line
    number to ``<out dir>/rejects/<split>.csv`` (the count is returned; nothing is dropped
    silently); other bad rows go through unchanged for the store to reject and count. Row ``n`` of
    the Parquet file is data row ``n`` of the raw file (in skip mode: counting kept rows only), so
    errors the store reports on it name "line" ``n`` of the Parquet file.

    Returns the Parquet source and the number of rows dropped here.
    """
    stamp_path = out.with_suffix(".json")
    st = src.path.stat()
    stamp = {
        "derived_format": DERIVED_FORMAT,
        "raw": str(src.path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "on_bad_rows": on_bad_rows,
        "key": dict(key or {}),
    }
    if out.exists() and stamp_path.exists():
        try:
            old = json.loads(stamp_path.read_text())
        except json.JSONDecodeError:
            old = None
        if old is not None and {k: v for k, v in old.items() if k != "dropped"} == stamp:
            return source_file(out, format="parquet"), int(old.get("dropped", 0))

    out.parent.mkdir(parents=True, exist_ok=True)
    dropped_lines: list[int] = []
    rejects: pl.DataFrame | None = None
    if on_bad_rows == "error":
        rep = check_structure(src, max_report=1)
        if rep.bad_lines:
            raise DataError(
                f"row has {rep.bad_counts[0]} fields, expected {rep.expected}", file=src.path, line=rep.bad_lines[0]
            )
        frame = scan(src, raw_columns)
        all_checks = list(checks) + [c for c in Encoders(schema).validation_exprs() if c[0] in raw_columns]
        bad = first_bad_row(frame, all_checks)
        if bad is not None:
            col, problem, line, value = bad
            raise DataError(f"{problem}: {value!r}", file=src.path, line=line, column=col)
    else:
        rep, raw = bad_line_set(src)
        dropped_lines = rep.bad_lines
        if dropped_lines:
            rejects = raw.select(
                pl.col(LINE).alias("line"),
                pl.lit(f"wrong number of fields (expected {rep.expected})").alias("reason"),
                pl.col("raw"),
            )
        frame = scan(src, raw_columns)
        if dropped_lines:
            frame = frame.filter(~pl.col(LINE).is_in(dropped_lines))

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        frame.select(exprs).sink_parquet(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    rej_path = out.parent / "rejects" / f"{out.stem}.csv"
    if rejects is not None and rejects.height:
        rej_path.parent.mkdir(exist_ok=True)
        rejects.write_csv(rej_path)
    elif rej_path.exists():
        rej_path.unlink()
    stamp_path.write_text(json.dumps({**stamp, "dropped": len(dropped_lines)}, indent=2))
    return source_file(out, format="parquet"), len(dropped_lines)

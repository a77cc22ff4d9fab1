"""``generic``: any CSV/TSV/Parquet/libsvm files plus a schema YAML.

Either explicit ``train`` / ``valid`` / ``test`` paths and ``schema``, or a directory holding
``train.*``, ``valid.*``, ``test.*`` and ``schema.yaml`` (the layout
:func:`ctrkit.data.synthetic.synthesize` writes). Read options (``format``, ``header``,
``columns``, ``separator``) apply to every file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from ctrkit.data.datasets._base import SPLITS, DatasetAdapter, FileSpec
from ctrkit.data.readers import Format, SourceFile, source_file
from ctrkit.data.store import BadRows, DataSpec
from ctrkit.errors import ConfigError, DataError
from ctrkit.schema import FeatureSchema

#: File extensions looked for in a source directory, in order.
EXTENSIONS = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".libsvm", ".csv.gz", ".tsv.gz")


class GenericDataset(DatasetAdapter):
    """Your own files: a schema YAML and one file per split (``train`` is required)."""

    name = "generic"
    title = "generic"
    summary = "your own CSV/TSV/Parquet/libsvm files plus a schema YAML"
    reference = "docs: ctrkit.data.datasets.generic"
    files = ()

    def __init__(
        self,
        *,
        train: str | Path | None = None,
        valid: str | Path | None = None,
        test: str | Path | None = None,
        schema: str | Path | FeatureSchema | None = None,
        format: Format | None = None,
        header: bool = True,
        columns: Sequence[str] | None = None,
        separator: str | None = None,
        name: str | None = None,
    ):
        self.given = {s: Path(p) for s, p in (("train", train), ("valid", valid), ("test", test)) if p is not None}
        self.schema_arg = schema
        self.format = format
        self.header = header
        self.columns = tuple(columns) if columns else None
        self.separator = separator
        self.dataset_name = name

    def file_spec(self, split: str) -> FileSpec:
        return FileSpec(split, f"{split}.*", format=self.format, header=self.header, columns=self.columns,
                        separator=self.separator)  # fmt: skip

    def _schema_path(self, source_dir: Path | None) -> Path | None:
        if isinstance(self.schema_arg, (str, Path)):
            return Path(self.schema_arg)
        return source_dir / "schema.yaml" if source_dir is not None else None

    def schema(self, source_dir: str | Path | None = None) -> FeatureSchema:
        """The given schema (object or YAML path), or ``<source_dir>/schema.yaml``."""
        if isinstance(self.schema_arg, FeatureSchema):
            return self.schema_arg
        p = self._schema_path(Path(source_dir) if source_dir is not None else None)
        if p is None:
            raise ConfigError("the generic dataset needs a schema YAML (schema=... or a source directory with schema.yaml)", key="schema")
        return FeatureSchema.from_yaml(p)

    def locate(self, source_dir: str | Path | None, *, paths: Mapping[str, str | Path] | None = None) -> dict[str, Path]:
        found = dict(self.given)
        found.update({s: Path(p) for s, p in (paths or {}).items()})
        if source_dir is not None:
            base = Path(source_dir)
            if not base.is_dir():
                raise DataError("source directory does not exist", file=base)
            for split in SPLITS:
                if split in found:
                    continue
                for ext in EXTENSIONS:
                    if (base / f"{split}{ext}").exists():
                        found[split] = base / f"{split}{ext}"
                        break
        if "train" not in found:
            where = f" in {source_dir}" if source_dir is not None else ""
            raise DataError(f"no train file{where}: give train=PATH or a directory with train.<csv|tsv|parquet>",
                            file=Path(source_dir) / "train.csv" if source_dir is not None else None)  # fmt: skip
        for split, p in found.items():
            if not p.exists():
                raise DataError(f"file given for split '{split}' does not exist", file=p)
        return found

    def verify(self, paths: Mapping[str, Path], *, progress: bool = False) -> dict[str, str]:
        return {s: "no published checksum" for s in paths}

    def preprocess(
        self, paths: Mapping[str, Path], work_dir: Path, on_bad_rows: BadRows, *, progress: bool = False
    ) -> dict[str, SourceFile]:
        return {
            s: source_file(p, format=self.format, header=self.header, columns=self.columns, separator=self.separator)
            for s, p in paths.items()
        }

    def data_spec(
        self,
        source_dir: str | Path | None = None,
        *,
        verify: bool = False,
        work_dir: str | Path | None = None,
        on_bad_rows: BadRows = "error",
        paths: Mapping[str, str | Path] | None = None,
        progress: bool = False,
    ) -> DataSpec:
        """Files and schema as given, or found in ``source_dir``."""
        located = self.locate(source_dir, paths=paths)
        schema = self.schema(source_dir)
        sources = self.preprocess(located, Path("."), on_bad_rows)
        base = Path(source_dir) if source_dir is not None else located["train"].parent
        name = self.dataset_name or base.resolve().name or "generic"
        return DataSpec(schema, sources, on_bad_rows=on_bad_rows, name=name)

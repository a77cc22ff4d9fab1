"""From a run's dataset section to an encoded store."""

from __future__ import annotations

from pathlib import Path

from ctrkit.config import DatasetConfig
from ctrkit.data.readers import source_file
from ctrkit.data.store import DataSpec, Store, build_store
from ctrkit.errors import ConfigError
from ctrkit.schema import FeatureSchema

_EXTS = (".tsv", ".csv", ".parquet", ".txt", ".libsvm")


def _find_split(directory: Path, split: str) -> Path | None:
    for ext in _EXTS:
        p = directory / f"{split}{ext}"
        if p.exists():
            return p
    return None


def data_spec(cfg: DatasetConfig) -> DataSpec:
    """The :class:`DataSpec` a dataset section describes.

    ``generic``: explicit ``train``/``valid``/``test`` files plus ``schema``, or a ``source``
    directory holding ``train.*``, ``valid.*``, ``test.*`` and ``schema.yaml`` (the layout
    ``ctrkit data synth`` writes). Any other name is a built-in adapter.
    """
    if cfg.name != "generic":
        from ctrkit.data.datasets import get_dataset

        if cfg.source is None:
            raise ConfigError(f"dataset '{cfg.name}' needs 'source': a local directory with its files", key="dataset.source")
        return get_dataset(cfg.name).data_spec(Path(cfg.source), on_bad_rows=cfg.on_bad_rows)

    base = Path(cfg.source) if cfg.source else None
    paths: dict[str, Path] = {}
    for split in ("train", "valid", "test"):
        given = getattr(cfg, split)
        if given:
            paths[split] = Path(given)
        elif base is not None:
            found = _find_split(base, split)
            if found is not None:
                paths[split] = found
    if "train" not in paths:
        raise ConfigError("no train file: give dataset.train or a source directory with train.<csv|tsv|parquet>", key="dataset.train")
    schema_path = Path(cfg.schema_path) if cfg.schema_path else (base / "schema.yaml" if base else None)
    if schema_path is None or not schema_path.exists():
        raise ConfigError(f"no schema YAML (looked for {schema_path})", key="dataset.schema")
    schema = FeatureSchema.from_yaml(schema_path)
    sources = {
        s: source_file(p, format=cfg.format, header=cfg.header, columns=cfg.columns, separator=cfg.separator)
        for s, p in paths.items()
    }
    name = base.name if base is not None else paths["train"].parent.name
    return DataSpec(schema, sources, on_bad_rows=cfg.on_bad_rows, name=name or "generic")


def prepare_store(cfg: DatasetConfig, default_root: Path = Path("stores"), *, progress: bool = True) -> Store:
    """Build (or reuse) the store of a dataset section."""
    spec = data_spec(cfg)
    directory = Path(cfg.store) if cfg.store else default_root / spec.name
    return build_store(spec, directory, progress=progress)

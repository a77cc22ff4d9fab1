"""Benchmark suites: one YAML file expanded into runs (dataset x model x grid point x seed).

A suite::

    name: synthetic_ceiling
    out: bench/synthetic_ceiling        # default: bench/<name> (relative to the working directory)
    datasets:
      - label: synth                    # display name (default: the adapter name or source dir)
        synthetic: {rows: 50000, num_numeric: 4, num_categorical: 8}   # created if missing
      - {name: frappe_x1, source: ../data/frappe_x1}                   # a RunConfig dataset section
    training: {epochs: 1, batch_size: 1024}   # defaults for every model
    grid: {training.learning_rate: [1.0e-3, 3.0e-3]}                  # for every model
    models:
      - name: DeepFM
        params: {embedding_dim: 8, hidden_units: [64, 64]}
        training: {embedding_regularizer: 0.01}
        grid: {model.params.net_dropout: [0.0, 0.2]}                  # this model only
      - base: bars/frappe_x1/DCNv2.yaml   # model + training from a run config (package configs/ or suite dir)
    seeds: [2021, 2022, 2023]

A grid maps dotted config keys to lists of values; every combination is one configuration
(BARS/FuxiCTR-style grid search); a model's grid entries replace the suite's for the same key.
Each run's resolved config is hashed without ``seed``/``threads``/``progress``/``run_dir``:
``config_hash`` names a configuration (shared by its seeds), ``run_id`` = hash of config_hash and
seed. Both are stable across machines for the same paths and values.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctrkit.config import apply_overrides
from ctrkit.errors import ConfigError

PACKAGE_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
_SUITE_KEYS = {"name", "out", "datasets", "models", "grid", "seeds", "training", "description"}
_MODEL_KEYS = {"name", "params", "training", "grid", "base", "label"}
_DATASET_PATH_KEYS = ("source", "store", "train", "valid", "test", "schema")
# Keys that do not change what a run computes (or would break resume when changed).
_UNHASHED_TRAINING = ("seed", "threads", "progress")


@dataclass(frozen=True)
class DatasetEntry:
    label: str
    section: dict[str, Any]  # a RunConfig dataset section (without 'synthetic')
    synthetic: dict[str, Any] | None = None  # SynthConfig kwargs: create section['source'] if missing


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    config_hash: str
    suite: str
    dataset: str  # dataset label
    model: str  # model label
    seed: int
    config: dict[str, Any]  # resolved RunConfig mapping (without run_dir)
    grid_point: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    out: Path
    datasets: list[DatasetEntry]
    runs: list[RunSpec]
    source: Path | None = None


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def config_hash(config: dict[str, Any]) -> str:
    """Hash of a run config without the keys that do not change its result."""
    c = copy.deepcopy(config)
    c.pop("run_dir", None)
    for k in _UNHASHED_TRAINING:
        c.get("training", {}).pop(k, None)
    return _hash(c)


def run_id(cfg_hash: str, seed: int) -> str:
    return _hash({"config": cfg_hash, "seed": int(seed)})


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _find_base(ref: str, suite_dir: Path) -> Path:
    for p in (Path(ref), suite_dir / ref, PACKAGE_CONFIGS / ref):
        if p.is_file():
            return p
    raise ConfigError(f"base config '{ref}' not found (looked beside the suite and in {PACKAGE_CONFIGS})")


def _grid_points(grid: dict[str, Any], where: str) -> list[dict[str, Any]]:
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"grid values must be a non-empty list", key=f"{where}.{k}")
    keys = sorted(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _overrides(point: dict[str, Any]) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in point.items()]


def _dataset_entries(raw: Any, suite_dir: Path, out: Path) -> list[DatasetEntry]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("a suite needs 'datasets': a non-empty list", key="datasets")
    entries, labels = [], set()
    for i, d in enumerate(raw):
        if not isinstance(d, dict):
            raise ConfigError("a dataset must be a mapping", key=f"datasets.{i}")
        d = copy.deepcopy(d)
        synth = d.pop("synthetic", None)
        label = d.pop("label", None)
        if synth is not None:
            if not isinstance(synth, dict):
                raise ConfigError("'synthetic' must be a mapping of SynthConfig options", key=f"datasets.{i}.synthetic")
            label = label or "synthetic"
            d.setdefault("name", "generic")
            d.setdefault("source", str(out / "data" / label))
        for k in _DATASET_PATH_KEYS:
            v = d.get(k)
            if isinstance(v, str) and v and not Path(v).is_absolute():
                d[k] = str((suite_dir / v).resolve())
        label = label or (Path(d["source"]).name if d.get("source") else d.get("name", f"dataset{i}"))
        if label in labels:
            raise ConfigError(f"duplicate dataset label '{label}'", key=f"datasets.{i}")
        labels.add(label)
        # One store per dataset, built before the workers start (no two workers build it at once).
        d.setdefault("store", str((out / "stores" / label).resolve()))
        entries.append(DatasetEntry(label, d, synth))
    return entries


def load_suite(path: str | Path | dict[str, Any], *, out: str | Path | None = None) -> Suite:
    """Read a suite YAML (or mapping) and expand it into runs. ``out`` overrides the suite's."""
    if isinstance(path, dict):
        data, src, suite_dir = copy.deepcopy(path), None, Path.cwd()
    else:
        src = Path(path)
        if not src.exists():
            raise ConfigError("suite file does not exist", file=src)
        data = yaml.safe_load(src.read_text()) or {}
        suite_dir = src.resolve().parent
    if not isinstance(data, dict):
        raise ConfigError("a suite must be a mapping", file=src)
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        raise ConfigError("unknown key", file=src, key=sorted(unknown)[0])
    name = str(data.get("name") or (src.stem if src else "suite"))
    out_dir = Path(out or data.get("out") or Path("bench") / name).resolve()
    seeds = data.get("seeds", [2021])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError("'seeds' must be a non-empty list of integers", file=src, key="seeds")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("duplicate seeds", file=src, key="seeds")
    datasets = _dataset_entries(data.get("datasets"), suite_dir, out_dir)
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError("a suite needs 'models': a non-empty list", file=src, key="models")
    suite_training = data.get("training") or {}
    suite_grid = data.get("grid") or {}

    from ctrkit.config import RunConfig  # validates every expanded config

    runs: list[RunSpec] = []
    seen: set[str] = set()
    labels: set[str] = set()
    for mi, m in enumerate(models):
        where = f"models.{mi}"
        if isinstance(m, str):
            m = {"name": m}
        if not isinstance(m, dict):
            raise ConfigError("a model must be a mapping or a name", file=src, key=where)
        bad = set(m) - _MODEL_KEYS
        if bad:
            raise ConfigError("unknown key", file=src, key=f"{where}.{sorted(bad)[0]}")
        base: dict[str, Any] = {"model": {}, "training": {}}
        if m.get("base"):
            b = yaml.safe_load(_find_base(m["base"], suite_dir).read_text()) or {}
            base = {"model": b.get("model", {}), "training": b.get("training", {})}
        model_sec = _merge(base["model"], {k: m[k] for k in ("name", "params") if k in m})
        if "name" not in model_sec:
            raise ConfigError("a model needs 'name' (or a 'base' config)", file=src, key=where)
        training = _merge(_merge(base["training"], suite_training), m.get("training") or {})
        label = str(m.get("label") or model_sec["name"])
        grid = {**suite_grid, **(m.get("grid") or {})}
        points = _grid_points(grid, where)
        multi = len(points) > 1
        for ds in datasets:
            for point in points:
                cfg = {"dataset": ds.section, "model": model_sec, "training": training}
                cfg = apply_overrides(cfg, _overrides(point))
                cfg["training"].pop("seed", None)
                ch = config_hash(cfg)
                for seed in seeds:
                    full = copy.deepcopy(cfg)
                    full["training"]["seed"] = int(seed)
                    rid = run_id(ch, seed)
                    if rid in seen:
                        continue  # the same configuration reached twice (e.g. overlapping grids)
                    seen.add(rid)
                    runs.append(RunSpec(rid, ch, name, ds.label, label, int(seed), full, dict(point) if multi else {}))
        if label in labels:
            raise ConfigError(f"duplicate model label '{label}' (give one a 'label')", file=src, key=where)
        labels.add(label)
    # Validate once per configuration (the synthetic source may not exist yet: validation is on keys).
    checked: set[str] = set()
    for r in runs:
        if r.config_hash not in checked:
            checked.add(r.config_hash)
            RunConfig.from_dict(r.config, source=src)
    return Suite(name, out_dir, datasets, runs, src)

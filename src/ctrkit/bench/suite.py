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

A model (or the suite, for every model) may also declare an Optuna search space, used by
``ctrkit tune`` (``ctrkit bench`` ignores it, ``ctrkit tune`` ignores the grid)::

      - name: DeepFM
        params: {embedding_dim: 8, hidden_units: [64, 64]}
        search:
          method: optuna                # the only method
          trials: 30                    # default for --trials (default 20)
          pruner: {startup_trials: 3, warmup_epochs: 0}   # median pruner (default), or: none
          space:
            training.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}   # float
            model.params.embedding_dim: {low: 4, high: 16, step: 4}          # int: int bounds
            model.params.hidden_units: [[64, 64], [128, 64]]                 # choices

Each (dataset, model) with a search space is one study (:class:`SearchSpec`); its trials train
with the suite's first seed. A model's ``search`` keys replace the suite's, its space entries are
added to (or replace) the suite's.

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
_SUITE_KEYS = {"name", "out", "datasets", "models", "grid", "seeds", "training", "description", "search"}
_MODEL_KEYS = {"name", "params", "training", "grid", "base", "label", "search"}
_SEARCH_KEYS = {"method", "trials", "space", "pruner"}
_PARAM_KEYS = {"low", "high", "log", "step"}
_PRUNER_KEYS = {"startup_trials", "warmup_epochs"}
DEFAULT_TRIALS = 20
_DATASET_PATH_KEYS = ("source", "store", "train", "valid", "test", "schema")
# Keys that do not change what a run computes (or would break resume when changed).
_UNHASHED_TRAINING = ("seed", "threads", "progress")


@dataclass(frozen=True)
class DatasetEntry:
    label: str
    section: dict[str, Any]  # a RunConfig dataset section (without 'synthetic')
    synthetic: dict[str, Any] | None = None  # SynthConfig kwargs: create section['source'] if missing

    @property
    def identity(self) -> dict[str, Any]:
        """What names this dataset in a run's config hash (its paths do not: see config_hash)."""
        return {"label": self.label, "synthetic": self.synthetic}


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
class Param:
    """One dimension of a search space: a float or int range (``log``: sampled on a log scale;
    ``step``: a grid within the range) or a list of choices (any YAML values)."""

    kind: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class SearchSpec:
    """One Optuna study: a model on a dataset, its base config and the space to search."""

    suite: str
    dataset: str  # dataset label
    model: str  # model label
    config: dict[str, Any]  # resolved RunConfig mapping (seed included, without run_dir)
    space: dict[str, Param]  # dotted config key -> dimension
    trials: int
    pruner: dict[str, int] | None  # {"startup_trials", "warmup_epochs"}; None: no pruning
    data: dict[str, Any] | None = None  # the dataset's identity in config hashes (DatasetEntry.identity)

    @property
    def study_name(self) -> str:
        return f"{self.suite}/{self.dataset}/{self.model}"


@dataclass(frozen=True)
class Suite:
    name: str
    out: Path
    datasets: list[DatasetEntry]
    runs: list[RunSpec]
    source: Path | None = None
    searches: list[SearchSpec] = field(default_factory=list)


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def config_hash(config: dict[str, Any], data: dict[str, Any] | None = None) -> str:
    """Hash of a run config without the keys that do not change its result.

    Left out: ``run_dir``, the training keys of ``_UNHASHED_TRAINING`` and the dataset's file
    paths (``_DATASET_PATH_KEYS``). Paths are where this machine keeps the data, not what the data
    is: the same suite checked out elsewhere (another machine, another directory, an archive of
    its results carried over, see :mod:`ctrkit.bench.archive`) must keep its run ids. ``data``
    names the data instead: a suite passes its dataset label and, for a synthetic dataset, the
    generator's settings (the split files themselves are checksummed in each run's store).
    """
    c = copy.deepcopy(config)
    c.pop("run_dir", None)
    for k in _UNHASHED_TRAINING:
        c.get("training", {}).pop(k, None)
    for k in _DATASET_PATH_KEYS:
        c.get("dataset", {}).pop(k, None)
    if data is not None:
        c["data"] = data
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
            raise ConfigError("grid values must be a non-empty list", key=f"{where}.{k}")
    keys = sorted(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _param(raw: Any, where: str, src: Path | None) -> Param:
    if isinstance(raw, list):
        if not raw:
            raise ConfigError("choices must be a non-empty list", file=src, key=where)
        return Param("categorical", choices=tuple(raw))
    if not isinstance(raw, dict):
        raise ConfigError("a search dimension is {low, high, log, step} or a list of choices", file=src, key=where)
    bad = set(raw) - _PARAM_KEYS
    if bad:
        raise ConfigError("unknown key", file=src, key=f"{where}.{sorted(bad)[0]}")
    for k in ("low", "high"):
        if not _number(raw.get(k)):
            raise ConfigError(f"'{k}' must be a number", file=src, key=f"{where}.{k}")
    low, high, log, step = raw["low"], raw["high"], raw.get("log", False), raw.get("step")
    if not isinstance(log, bool):
        raise ConfigError("'log' must be true or false", file=src, key=f"{where}.log")
    if not low < high:
        raise ConfigError(f"'low' ({low}) must be below 'high' ({high})", file=src, key=where)
    if log and low <= 0:
        raise ConfigError("a log scale needs 'low' > 0", file=src, key=f"{where}.low")
    if step is not None and (not _number(step) or step <= 0 or log):
        raise ConfigError("'step' must be a positive number, and cannot be combined with 'log'", file=src, key=f"{where}.step")
    is_int = isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))
    return Param("int" if is_int else "float", low=low, high=high, log=log, step=step)


def _search_section(suite_search: Any, model_search: Any, where: str, src: Path | None) -> dict[str, Any] | None:
    """The merged search section of a model (None: the model is not tuned)."""
    merged: dict[str, Any] = {}
    for raw, w in ((suite_search, "search"), (model_search, f"{where}.search")):
        if raw is None:
            continue
        if not isinstance(raw, dict):
            raise ConfigError("'search' must be a mapping", file=src, key=w)
        bad = set(raw) - _SEARCH_KEYS
        if bad:
            raise ConfigError("unknown key", file=src, key=f"{w}.{sorted(bad)[0]}")
        space = raw.get("space", {})
        if not isinstance(space, dict):
            raise ConfigError("'space' must be a mapping of dotted config keys", file=src, key=f"{w}.space")
        merged = {**merged, **raw, "space": {**merged.get("space", {}), **space}}
    if not merged or (model_search is None and not merged["space"]):
        return None  # a suite-wide search without a space tunes only the models that give one
    return merged


def _search_spec(section: dict[str, Any], where: str, src: Path | None, **fields: Any) -> SearchSpec:
    w = f"{where}.search"
    method = section.get("method", "optuna")
    if method != "optuna":
        raise ConfigError(f"unknown search method '{method}' (the one method is 'optuna')", file=src, key=f"{w}.method")
    trials = section.get("trials", DEFAULT_TRIALS)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise ConfigError("'trials' must be a positive integer", file=src, key=f"{w}.trials")
    if not section["space"]:
        raise ConfigError("a search needs a non-empty 'space'", file=src, key=f"{w}.space")
    space = {k: _param(v, f"{w}.space.{k}", src) for k, v in section["space"].items()}
    pruner: dict[str, int] | None = {"startup_trials": 3, "warmup_epochs": 0}
    raw_pruner = section.get("pruner", "median")
    if raw_pruner in ("none", None, False):
        pruner = None
    elif isinstance(raw_pruner, dict):
        bad = set(raw_pruner) - _PRUNER_KEYS
        if bad:
            raise ConfigError("unknown key", file=src, key=f"{w}.pruner.{sorted(bad)[0]}")
        for k, v in raw_pruner.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError("must be a non-negative integer", file=src, key=f"{w}.pruner.{k}")
        pruner = {**pruner, **raw_pruner}  # type: ignore[dict-item]
    elif raw_pruner != "median":
        raise ConfigError("'pruner' is 'median' (default), 'none' or {startup_trials, warmup_epochs}", file=src, key=f"{w}.pruner")
    return SearchSpec(space=space, trials=trials, pruner=pruner, **fields)


def space_extremes(space: dict[str, Param]) -> list[dict[str, Any]]:
    """Two points of a space (all lows / first choices, all highs / last choices): enough to
    check that every key names a config option and every value has the option's type."""
    lo = {k: (p.choices[0] if p.kind == "categorical" else p.low) for k, p in space.items()}
    hi = {k: (p.choices[-1] if p.kind == "categorical" else p.high) for k, p in space.items()}
    return [lo, hi]


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
    suite_search = data.get("search")

    from ctrkit.config import RunConfig  # validates every expanded config

    runs: list[RunSpec] = []
    searches: list[SearchSpec] = []
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
                ch = config_hash(cfg, ds.identity)
                for seed in seeds:
                    full = copy.deepcopy(cfg)
                    full["training"]["seed"] = int(seed)
                    rid = run_id(ch, seed)
                    if rid in seen:
                        continue  # the same configuration reached twice (e.g. overlapping grids)
                    seen.add(rid)
                    runs.append(RunSpec(rid, ch, name, ds.label, label, int(seed), full, dict(point) if multi else {}))
        search = _search_section(suite_search, m.get("search"), where, src)
        if search is not None:
            for ds in datasets:
                cfg = {"dataset": ds.section, "model": model_sec, "training": copy.deepcopy(training)}
                cfg["training"]["seed"] = int(seeds[0])
                spec = _search_spec(search, where, src, suite=name, dataset=ds.label, model=label, config=cfg, data=ds.identity)
                for point in space_extremes(spec.space):  # a typo in a key fails here, not in trial 7
                    try:
                        RunConfig.from_dict(apply_overrides(cfg, _overrides(point)), source=src)
                    except ConfigError as e:
                        raise ConfigError(f"search space {point}: {e}", file=src, key=f"{where}.search.space") from None
                searches.append(spec)
        if label in labels:
            raise ConfigError(f"duplicate model label '{label}' (give one a 'label')", file=src, key=where)
        labels.add(label)
    # Seed-major order: every configuration's first seed runs before any configuration's second, so
    # a suite stopped part-way (hours into a long one) already holds one run of every model.
    rank = {int(s): i for i, s in enumerate(seeds)}
    runs.sort(key=lambda r: rank[r.seed])
    # Validate once per configuration (the synthetic source may not exist yet: validation is on keys).
    checked: set[str] = set()
    for r in runs:
        if r.config_hash not in checked:
            checked.add(r.config_hash)
            RunConfig.from_dict(r.config, source=src)
    return Suite(name, out_dir, datasets, runs, src, searches)

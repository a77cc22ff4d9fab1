"""Run configuration: dataset, model, training. Strict: an unknown key or a wrong type is an error
naming the key (and the file).

A run config in YAML::

    dataset:
      name: frappe_x1                 # a built-in adapter, or "generic" with train/valid/test/schema
      source: ../shared/data/frappe_x1
    model:
      name: DeepFM
      params: {embedding_dim: 10, hidden_units: [400, 400, 400], net_dropout: 0.2, batch_norm: true}
    training:
      preset: bars                    # the BARS protocol (see TrainingConfig)
      embedding_regularizer: 0.05
      batch_size: 4096
      seed: 2021

``--set training.batch_size=1024`` style overrides are applied to the mapping before validation.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ctrkit.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    """Where the data comes from and where its encoded store lives.

    Built-in adapters need ``name`` and ``source`` (a local directory). The ``generic`` adapter
    takes ``train``/``valid``/``test`` files and a ``schema`` YAML; a directory written by
    ``ctrkit data synth`` can be given as ``source`` with ``name: generic``.
    """

    name: str = "generic"
    source: str | None = None
    store: str | None = None  # default: stores/<name>-<fingerprint prefix> under the run's root
    train: str | None = None
    valid: str | None = None
    test: str | None = None
    schema_path: str | None = Field(default=None, alias="schema")
    format: Literal["csv", "tsv", "parquet", "libsvm"] | None = None
    header: bool = True
    columns: list[str] | None = None
    separator: str | None = None
    on_bad_rows: Literal["error", "skip"] = "error"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ModelConfig(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingConfig(_Strict):
    """How to train. Defaults are the BARS protocol (FuxiCTR's trainer):

    Adam at 1e-3 for the network; evaluate on validation every epoch; monitor AUC; when it does not
    improve, divide every learning rate by 10 (down to 1e-6) and count one strike; stop after
    ``patience`` strikes; restore the best weights; then test. Gradient norm clipped at 10.
    Regularisers have FuxiCTR's meaning: a loss term (lambda/2)*||w||^2, applied as an L2 term in
    the gradient (lambda*w) by the optimizer; for row-sparse embeddings only the rows in the batch
    are penalised (see ``embedding_mode``).
    """

    preset: Literal["bars", "none"] = "bars"
    optimizer: Literal["adam", "adamw", "sgd", "adagrad"] = "adam"
    learning_rate: float = Field(default=1e-3, gt=0)
    # Embeddings: "sparse" updates only the rows in the batch (optimizer state per row);
    # "dense" reproduces FuxiCTR (dense Adam over whole tables, every row decayed every step).
    embedding_mode: Literal["sparse", "dense"] = "sparse"
    embedding_optimizer: Literal["adam", "adagrad"] = "adam"
    embedding_learning_rate: float | None = Field(default=None, gt=0)
    embedding_regularizer: float = Field(default=0.0, ge=0)
    net_regularizer: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=4096, ge=1)
    eval_batch_size: int = Field(default=16384, ge=1)
    epochs: int = Field(default=100, ge=1)
    eval_every_epochs: int = Field(default=1, ge=1)
    monitor: str = "auc"  # auc | logloss | auc-logloss | gauc; "<task>:<metric>"; sum via "+"
    monitor_mode: Literal["max", "min"] = "max"
    patience: int = Field(default=2, ge=1)
    reduce_lr_factor: float = Field(default=0.1, gt=0, le=1)
    min_learning_rate: float = Field(default=1e-6, ge=0)
    clip_grad_norm: float | None = Field(default=10.0, gt=0)
    seed: int = 2021
    threads: int = Field(default=2, ge=1)
    prefetch: int = Field(default=2, ge=0)
    checkpoint_every_batches: int = Field(default=200, ge=1)
    max_batches_per_epoch: int | None = Field(default=None, ge=1)  # for smoke tests
    progress: bool = True


class RunConfig(_Strict):
    dataset: DatasetConfig
    model: ModelConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    run_dir: str | None = None  # default: runs/<dataset>-<model>-<timestamp>

    @model_validator(mode="after")
    def _dataset_has_source(self) -> "RunConfig":
        d = self.dataset
        if d.source is None and d.train is None:
            raise ValueError("dataset needs 'source' (a directory) or 'train'/'valid'/'test' files")
        return self

    # --------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path | None = None) -> "RunConfig":
        try:
            cfg = cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(x) for x in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            raise ConfigError(msg, file=source, key=key) from None
        # Model parameters are checked against the model's own config dataclass.
        from ctrkit.models.registry import make_config

        make_config(cfg.model.name, cfg.model.params, source=str(source) if source else None)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> "RunConfig":
        p = Path(path)
        if not p.exists():
            raise ConfigError("config file does not exist", file=p)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"not valid YAML: {e}", file=p) from None
        if not isinstance(data, dict):
            raise ConfigError("a run config must be a mapping", file=p)
        # Relative data paths written in a config file are relative to that file; paths given as
        # overrides on the command line stay relative to the working directory.
        data = apply_overrides(_resolve_paths(data, p.parent), overrides or [])
        return cls.from_dict(data, source=p)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) to a nested mapping."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section", key=key)
            node = nxt
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    out = copy.deepcopy(data)
    rd = out.get("run_dir")
    if isinstance(rd, str) and rd and not Path(rd).is_absolute():
        out["run_dir"] = str((base / rd).resolve())
    ds = out.get("dataset")
    if isinstance(ds, dict):
        for k in ("source", "store", "train", "valid", "test", "schema"):
            v = ds.get(k)
            if isinstance(v, str) and v and not Path(v).is_absolute():
                ds[k] = str((base / v).resolve())
    return out

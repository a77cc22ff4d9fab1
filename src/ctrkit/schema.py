"""Feature schema: what each column of a raw file is, and how it becomes model input.

Users write the schema as YAML::

    features:
      - {name: user_id, kind: categorical, min_count: 2}
      - {name: price, kind: numeric, normalizer: log, fill_value: 0}
      - {name: I1, kind: numeric, bucketize: {method: criteo_log2}, min_count: 10}
      - {name: hist_items, kind: sequence, delimiter: "^", max_len: 50, share_vocab_with: item_id}
    tasks:
      - {name: click, column: clk}
    group: user_id        # optional, for gAUC
    domain: scenario      # optional, for multi-domain models

Validation is strict: an unknown key or a wrong type raises :class:`ConfigError` naming the file and
the key. A schema round-trips through JSON (:meth:`FeatureSchema.to_json` / :meth:`from_json`).

The *fitted* schema is the same object with ``vocab_size`` filled in for every field that owns an
embedding table; it is the one source of vocabulary sizes for models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ctrkit.errors import ConfigError

#: Reserved ids in every vocabulary. Padding is 0 so that padded sequence slots can be masked by
#: ``ids != 0``; out-of-vocabulary (unseen or rarer than ``min_count``) is 1.
PAD_ID = 0
OOV_ID = 1
NUM_RESERVED = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Bucketize(_Strict):
    """Turn a numeric column into a categorical one.

    ``quantile``: ``num_buckets`` equal-frequency buckets with edges fitted on train.
    ``criteo_log2``: ``floor(log(x)^2)`` for x > 2, else ``int(x)`` (the Criteo winners' and BARS'
    transform); the resulting integers then get a vocabulary with the field's ``min_count``.
    """

    method: Literal["quantile", "criteo_log2"]
    num_buckets: int = Field(default=10, ge=2)


class CategoricalFeature(_Strict):
    """A single-valued categorical column; values are read as strings."""

    kind: Literal["categorical"] = "categorical"
    name: str
    column: str | None = None  # source column, defaults to ``name``
    min_count: int = Field(default=1, ge=1)
    hash_buckets: int | None = Field(default=None, ge=1)
    embedding_dim: int | None = Field(default=None, ge=1)
    share_vocab_with: str | None = None
    fill_value: str = ""  # a missing value becomes this token (its own category, as in FuxiCTR)
    vocab_size: int | None = None  # set by fitting; includes the reserved ids

    @property
    def source(self) -> str:
        return self.column or self.name


class NumericFeature(_Strict):
    """A numeric column: normalized into the dense tensor, or bucketized into a categorical id."""

    kind: Literal["numeric"] = "numeric"
    name: str
    column: str | None = None
    fill_value: float = 0.0
    normalizer: Literal["none", "standard", "minmax", "log"] = "none"
    bucketize: Bucketize | None = None
    # Only used when bucketized: the buckets are a categorical vocabulary.
    min_count: int = Field(default=1, ge=1)
    embedding_dim: int | None = Field(default=None, ge=1)
    vocab_size: int | None = None

    @property
    def source(self) -> str:
        return self.column or self.name

    @property
    def is_categorical(self) -> bool:
        return self.bucketize is not None

    @model_validator(mode="after")
    def _no_normalizer_with_buckets(self) -> "NumericFeature":
        if self.bucketize is not None and self.normalizer != "none":
            raise ValueError(f"feature '{self.name}': 'normalizer' and 'bucketize' exclude each other")
        return self


class SequenceFeature(_Strict):
    """A multi-valued column (behaviour sequence or tag list) in one delimited string.

    ``truncate: pre`` drops the oldest (leftmost) items when longer than ``max_len`` and keeps the
    most recent ones, which is what behaviour models want.
    """

    kind: Literal["sequence"] = "sequence"
    name: str
    column: str | None = None
    delimiter: str = "^"
    max_len: int = Field(default=50, ge=1)
    truncate: Literal["pre", "post"] = "pre"
    share_vocab_with: str | None = None
    min_count: int = Field(default=1, ge=1)
    embedding_dim: int | None = Field(default=None, ge=1)
    vocab_size: int | None = None

    @property
    def source(self) -> str:
        return self.column or self.name


Feature = Annotated[
    Union[CategoricalFeature, NumericFeature, SequenceFeature], Field(discriminator="kind")
]


class TaskSpec(_Strict):
    """One label column. ``kind: binary`` is the only kind the CTR losses use today."""

    name: str
    column: str | None = None
    kind: Literal["binary"] = "binary"

    @property
    def source(self) -> str:
        return self.column or self.name


class FeatureSchema(_Strict):
    """All columns of a dataset and what they are. See the module docstring for the YAML form."""

    features: list[Feature]
    tasks: list[TaskSpec] = Field(min_length=1)
    group: str | None = None  # column whose values define gAUC groups (e.g. user id)
    domain: str | None = None  # column whose values are domains (multi-domain models)
    num_domains: int | None = None  # set by fitting when ``domain`` is given

    @model_validator(mode="after")
    def _check_names(self) -> "FeatureSchema":
        names = [f.name for f in self.features]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate feature names: {sorted(dup)}")
        by_name = {f.name: f for f in self.features}
        for f in self.features:
            share = getattr(f, "share_vocab_with", None)
            if share is None:
                continue
            owner = by_name.get(share)
            if owner is None:
                raise ValueError(f"feature '{f.name}': share_vocab_with '{share}' is not a feature")
            if not isinstance(owner, CategoricalFeature) or owner.share_vocab_with is not None:
                raise ValueError(
                    f"feature '{f.name}': share_vocab_with must name a categorical feature that owns "
                    f"its vocabulary ('{share}' does not)"
                )
            if isinstance(f, CategoricalFeature) and owner.hash_buckets != f.hash_buckets:
                raise ValueError(f"feature '{f.name}' shares '{share}' but their hash_buckets differ")
        tnames = [t.name for t in self.tasks]
        if len(set(tnames)) != len(tnames):
            raise ValueError(f"duplicate task names: {tnames}")
        return self

    # ----------------------------------------------------------------- views models use
    @property
    def categorical(self) -> list[CategoricalFeature | NumericFeature]:
        """Single-valued fields that become one column of ``Batch.ids``, in schema order."""
        return [
            f
            for f in self.features
            if isinstance(f, CategoricalFeature) or (isinstance(f, NumericFeature) and f.is_categorical)
        ]

    @property
    def numeric(self) -> list[NumericFeature]:
        """Numeric fields that become one column of ``Batch.dense``, in schema order."""
        return [f for f in self.features if isinstance(f, NumericFeature) and not f.is_categorical]

    @property
    def sequences(self) -> list[SequenceFeature]:
        return [f for f in self.features if isinstance(f, SequenceFeature)]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no feature named '{name}' (features: {[f.name for f in self.features]})")

    def vocab_owner(self, name: str) -> str:
        """The feature whose vocabulary (and embedding rows) ``name`` uses."""
        f = self.feature(name)
        return getattr(f, "share_vocab_with", None) or f.name

    @property
    def is_fitted(self) -> bool:
        return all(
            getattr(f, "vocab_size", None) is not None
            for f in self.features
            if not isinstance(f, NumericFeature) or f.is_categorical
            if self.vocab_owner(f.name) == f.name
        )

    def vocab_size(self, name: str) -> int:
        """Rows of the vocabulary ``name`` uses, reserved ids included. Needs a fitted schema."""
        owner = self.feature(self.vocab_owner(name))
        size = getattr(owner, "vocab_size", None)
        if size is None:
            raise ValueError(f"schema is not fitted: no vocab_size for '{owner.name}'")
        return int(size)

    def with_vocab_sizes(self, sizes: dict[str, int]) -> "FeatureSchema":
        """A copy with ``vocab_size`` set for the named (vocabulary-owning) features."""
        feats = [
            f.model_copy(update={"vocab_size": sizes[f.name]}) if f.name in sizes else f
            for f in self.features
        ]
        return self.model_copy(update={"features": feats})

    @property
    def source_columns(self) -> list[str]:
        """Raw columns the schema reads, each once, in schema order."""
        cols: list[str] = []
        for c in [f.source for f in self.features] + [t.source for t in self.tasks] + [
            self.group,
            self.domain,
        ]:
            if c is not None and c not in cols:
                cols.append(c)
        return cols

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Any, *, source: str | Path | None = None) -> "FeatureSchema":
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise _config_error(e, source) from None

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "FeatureSchema":
        p = Path(text_or_path) if not str(text_or_path).lstrip().startswith("{") else None
        if p is not None:
            return cls.from_dict(json.loads(p.read_text()), source=p)
        return cls.from_dict(json.loads(str(text_or_path)))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "FeatureSchema":
        p = Path(path)
        if not p.exists():
            raise ConfigError("schema file does not exist", file=p)
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"not valid YAML: {e}", file=p) from None
        if not isinstance(data, dict):
            raise ConfigError("a schema must be a mapping with 'features' and 'tasks'", file=p)
        return cls.from_dict(data, source=p)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text


def _config_error(e: ValidationError, source: str | Path | None) -> ConfigError:
    """Turn pydantic's report into one line naming the first bad key by its path."""
    err = e.errors()[0]
    loc = [str(x) for x in err["loc"]]
    # Discriminated unions put the tag into the path ('features.3.categorical.min_cnt'); drop it.
    loc = [x for x in loc if x not in ("categorical", "numeric", "sequence")]
    key = ".".join(loc) if loc else None
    kind = err["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "required key is missing"
    else:
        msg = err["msg"]
    if len(e.errors()) > 1:
        msg += f" (and {len(e.errors()) - 1} more problem(s))"
    return ConfigError(msg, file=source, key=key)

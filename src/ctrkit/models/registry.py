"""The model registry: every model module in ``ctrkit.models`` registers itself by decorator.

Adding a model touches its own file (``models/<name>.py`` with ``@register(...)``) and its test;
the registry finds the module by scanning the package, so no central list needs editing.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from pydantic import TypeAdapter, ValidationError

from ctrkit.errors import ConfigError
from ctrkit.schema import FeatureSchema

TaskKind = Literal["ctr", "sequence", "multitask", "multidomain"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    cls: type
    config_class: type
    kind: TaskKind
    reference: str


_REGISTRY: dict[str, ModelInfo] = {}
_LOADED = False
_SKIP = {"base", "registry"}


def register(name: str, *, kind: TaskKind = "ctr", reference: str) -> Callable[[type], type]:
    """Class decorator: ``@register("DeepFM", reference="Guo et al., IJCAI 2017")``."""

    def deco(cls: type) -> type:
        key = name.lower()
        if key in _REGISTRY and _REGISTRY[key].cls is not cls:
            raise ValueError(f"model name '{name}' registered twice")
        _REGISTRY[key] = ModelInfo(name, cls, cls.config_class, kind, reference)
        return cls

    return deco


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    import ctrkit.models as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if mod.name not in _SKIP and not mod.name.startswith("_"):
            importlib.import_module(f"ctrkit.models.{mod.name}")
    _LOADED = True


def list_models() -> list[ModelInfo]:
    """Every registered model, sorted by name."""
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda m: m.name.lower())


def get_model_info(name: str) -> ModelInfo:
    _load_all()
    info = _REGISTRY.get(name.lower())
    if info is None:
        known = ", ".join(m.name for m in list_models())
        raise ConfigError(f"unknown model '{name}' (known: {known})", key="model.name")
    return info


def make_config(name: str, params: Mapping[str, Any] | None = None, *, source: str | None = None) -> Any:
    """Build a model's frozen config from a plain mapping; an unknown key or wrong type is an
    error naming the key."""
    info = get_model_info(name)
    params = dict(params or {})
    names = {f.name for f in dataclasses.fields(info.config_class)}
    for k in params:
        if k not in names:
            raise ConfigError(
                f"unknown parameter for model {info.name} (known: {sorted(names)})",
                file=source,
                key=f"model.params.{k}",
            )
    try:
        return TypeAdapter(info.config_class).validate_python(params)
    except ValidationError as e:
        err = e.errors()[0]
        key = "model.params." + ".".join(str(x) for x in err["loc"])
        raise ConfigError(err["msg"], file=source, key=key) from None


def build_model(name: str, schema: FeatureSchema, params: Mapping[str, Any] | Any | None = None):
    """Instantiate a registered model from a fitted schema and a config (dataclass or mapping)."""
    info = get_model_info(name)
    config = params if isinstance(params, info.config_class) else make_config(name, params)
    return info.cls(schema, config)

"""The model zoo. One file per model; see :mod:`ctrkit.models.registry`."""

from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import build_model, get_model_info, list_models, make_config, register

__all__ = ["CTRModel", "ModelOutput", "build_model", "get_model_info", "list_models", "make_config", "register"]

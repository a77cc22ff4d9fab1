"""ctrkit: a fast, reproducible platform for click-through-rate prediction.

Top-level names are imported lazily, so data-only use (preprocessing, reports) does not pay for
importing torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# name -> module that defines it. ``ctrkit.train`` is the training package; it is callable:
# ``ctrkit.train(config)`` runs :func:`ctrkit.train.run.train`.
_LAZY = {
    "Batch": "ctrkit.batch",
    "FieldLayout": "ctrkit.batch",
    "SequenceBatch": "ctrkit.batch",
    "FeatureSchema": "ctrkit.schema",
    "RunConfig": "ctrkit.config",
}

__all__ = ["Batch", "FeatureSchema", "FieldLayout", "RunConfig", "SequenceBatch", "__version__", "train"]


def __getattr__(name: str) -> Any:
    import importlib

    if name == "train":
        return importlib.import_module("ctrkit.train")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ctrkit' has no attribute '{name}'")

"""The data half: readers, encoders fitted on train, the encoded store, the batch loader.

Names are imported lazily: building a store needs Polars and numpy, not torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "BatchLoader": "ctrkit.data.loader",
    "DataSpec": "ctrkit.data.store",
    "Store": "ctrkit.data.store",
    "build_store": "ctrkit.data.store",
    "Encoders": "ctrkit.data.encoders",
    "SourceFile": "ctrkit.data.readers",
    "source_file": "ctrkit.data.readers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ctrkit.data' has no attribute '{name}'")

"""ctrkit: a fast, reproducible platform for click-through-rate prediction.

Top-level names are imported lazily, so data-only use (preprocessing, reports) does not pay for
importing torch.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__version__ = "0.1.0"

# PyTorch's CPU allocator hands every freed block back to the kernel, so each new activation of
# a few MB (a (4096, 400) layer output is 6.5 MB) faults all its 4 KB pages in again, zeroed: on
# this project's 2-core machines that costs more than the arithmetic of an elementwise op (exp
# over 164 MB: 190 ms fresh, 55 ms into an existing buffer). With THP_MEM_ALLOC_ENABLE=1 PyTorch
# aligns blocks of 2 MB or more to huge pages and advises the kernel to back them with 2 MB
# pages: about 60x fewer faults. PyTorch reads the variable once, at its first allocation, so it
# only takes effect when ctrkit is imported before torch (the CLI, bench workers, or
# ``import ctrkit`` first). A value set by the user wins; THP_MEM_ALLOC_ENABLE=0 turns it off.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
#: Whether the setting above reached PyTorch (False when torch was imported before ctrkit).
HUGE_PAGE_ALLOC: bool = os.environ["THP_MEM_ALLOC_ENABLE"] == "1" and "torch" not in sys.modules

# name -> module that defines it. ``ctrkit.train`` is the training package; it is callable:
# ``ctrkit.train(config)`` runs :func:`ctrkit.train.run.train`.
_LAZY = {
    "Batch": "ctrkit.batch",
    "FieldLayout": "ctrkit.batch",
    "SequenceBatch": "ctrkit.batch",
    "FeatureSchema": "ctrkit.schema",
    "RunConfig": "ctrkit.config",
}

__all__ = ["HUGE_PAGE_ALLOC", "Batch", "FeatureSchema", "FieldLayout", "RunConfig", "SequenceBatch", "__version__", "train"]


def __getattr__(name: str) -> Any:
    import importlib

    if name == "train":
        return importlib.import_module("ctrkit.train")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ctrkit' has no attribute '{name}'")

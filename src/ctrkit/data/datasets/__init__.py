"""Built-in dataset adapters: a local directory in, the published split and preprocessing out.

>>> from ctrkit.data.datasets import get_dataset
>>> ds = get_dataset("frappe_x1")
>>> spec = ds.data_spec("/data/Frappe_x1")          # doctest: +SKIP
>>> store = build_store(spec, "stores/frappe_x1")   # doctest: +SKIP

Every adapter has ``name``, ``title``, ``files`` (expected names, published md5s and row counts),
``urls`` (public archives), ``schema()`` (BARS' preprocessing), ``locate``, ``verify`` and
``data_spec(source_dir, verify=False, ...)``. ``criteo_x4`` and ``avazu_x4`` also take the raw
Kaggle file and reproduce BARS' split (``split_raw``); their ``_002`` settings are reachable as
``criteo_x4_002`` / ``avazu_x4_002``. ``generic`` wraps your own files and schema YAML.
:func:`fetch_dataset` downloads with checksum verification.
"""

from __future__ import annotations

from typing import Any, Callable

from ctrkit.data.datasets._base import DatasetAdapter, FileSpec, md5_file
from ctrkit.data.datasets._download import download_file, fetch_dataset
from ctrkit.data.datasets._split import bars_x4_folds, split_raw
from ctrkit.data.datasets.avazu_x1 import AvazuX1
from ctrkit.data.datasets.avazu_x4 import AvazuX4
from ctrkit.data.datasets.criteo_x1 import CriteoX1
from ctrkit.data.datasets.criteo_x4 import CriteoX4
from ctrkit.data.datasets.frappe_x1 import FrappeX1
from ctrkit.data.datasets.generic import GenericDataset
from ctrkit.data.datasets.kkbox_x1 import KKBoxX1
from ctrkit.data.datasets.movielenslatest_x1 import MovielensLatestX1

_REGISTRY: dict[str, Callable[..., DatasetAdapter]] = {
    "frappe_x1": FrappeX1,
    "movielenslatest_x1": MovielensLatestX1,
    "criteo_x1": CriteoX1,
    "criteo_x4": CriteoX4,
    "criteo_x4_001": lambda **kw: CriteoX4("001", **kw),
    "criteo_x4_002": lambda **kw: CriteoX4("002", **kw),
    "avazu_x1": AvazuX1,
    "avazu_x4": AvazuX4,
    "avazu_x4_001": lambda **kw: AvazuX4("001", **kw),
    "avazu_x4_002": lambda **kw: AvazuX4("002", **kw),
    "kkbox_x1": KKBoxX1,
    "generic": GenericDataset,
}
#: Names listed by ``ctrkit data list`` (aliases of a default setting are left out).
LISTED = (
    "frappe_x1", "movielenslatest_x1", "criteo_x1", "criteo_x4", "criteo_x4_002",
    "avazu_x1", "avazu_x4", "avazu_x4_002", "kkbox_x1", "generic",
)  # fmt: skip


def dataset_names() -> list[str]:
    """Every name :func:`get_dataset` accepts."""
    return sorted(_REGISTRY)


def get_dataset(name: str, /, **options: Any) -> DatasetAdapter:
    """The adapter called ``name`` (case-insensitive); ``options`` go to its constructor
    (e.g. ``get_dataset("generic", train=..., schema=...)``)."""
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown dataset '{name}' (known: {', '.join(LISTED)})")
    return _REGISTRY[key](**options)


def list_datasets() -> list[DatasetAdapter]:
    """One adapter per listed name, in listing order."""
    return [get_dataset(n) for n in LISTED]


__all__ = [
    "AvazuX1",
    "AvazuX4",
    "CriteoX1",
    "CriteoX4",
    "DatasetAdapter",
    "FileSpec",
    "FrappeX1",
    "GenericDataset",
    "KKBoxX1",
    "MovielensLatestX1",
    "bars_x4_folds",
    "dataset_names",
    "download_file",
    "fetch_dataset",
    "get_dataset",
    "list_datasets",
    "md5_file",
    "split_raw",
]

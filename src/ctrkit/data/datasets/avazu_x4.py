"""Avazu_x4 (BARS): Kaggle Avazu split 8:1:1 with AutoInt's stratified 10-fold procedure.

Facts (reczoo/Datasets ``Avazu/Avazu_x4/README.md`` and ``convert_avazu_x4.py``; FuxiCTR
``config/dataset_config/Avazu.yaml`` and its ``convert_hour``/``convert_weekday``/``convert_weekend``;
reczoo/BARS ``DeepFM_avazu_x4_001`` / ``_002`` logs):

* split: ``StratifiedKFold(n_splits=10, shuffle=True, random_state=2018)`` over the raw Kaggle
  ``train.csv`` stratified by ``click`` (sklearn 0.19.1): 32,343,172 / 4,042,897 / 4,042,898 rows;
  reproduced in numpy by :meth:`AvazuX4.split_raw`;
* preprocessing: ``id`` dropped; ``hour`` (``YYMMDDHH``) becomes three fields: ``hour`` = ``HH`` as
  an integer, ``weekday`` = ``date(20YY, MM, DD).strftime('%w')`` (0 = Sunday), ``weekend`` = 1 on
  Saturday/Sunday else 0; all 24 fields categorical with ``min_categr_count`` 2 (setting ``001``,
  ``embedding_dim=16``) or 1 (``002``, ``embedding_dim=40``).

The schema cannot compute calendar fields, so :meth:`AvazuX4.preprocess` writes them once into a
Parquet file per split in the work directory (see :func:`~ctrkit.data.datasets._base.derive`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping

import polars as pl

from ctrkit.data.datasets._base import DatasetAdapter, FileSpec, categorical, derive, make_schema
from ctrkit.data.datasets._split import split_raw
from ctrkit.data.readers import SourceFile
from ctrkit.data.store import BadRows
from ctrkit.errors import DataError
from ctrkit.schema import FeatureSchema

RAW_FIELDS = (
    "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id", "app_domain",
    "app_category", "device_id", "device_ip", "device_model", "device_type", "device_conn_type",
    "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21",
)  # fmt: skip
#: Columns of the raw Kaggle ``train.csv`` (and of the published Avazu_x4 CSVs).
COLUMNS = ("id", "click", "hour", *RAW_FIELDS)
#: Model fields after preprocessing, in FuxiCTR's order.
FIELDS = ("hour", *RAW_FIELDS, "weekday", "weekend")
#: Names the raw Kaggle file goes by (``train.gz`` decompressed is ``train``).
RAW_NAMES = ("train.csv", "train")

Variant = Literal["001", "002"]
_SETTINGS: dict[str, tuple[int, int]] = {"001": (2, 16), "002": (1, 40)}  # min_count, embedding_dim


def calendar_exprs() -> list[pl.Expr]:
    """``hour`` (``YYMMDDHH``) -> ``hour`` (0-23), ``weekday`` (0 = Sunday), ``weekend`` (0/1), as
    strings (FuxiCTR's ``convert_hour`` / ``convert_weekday`` / ``convert_weekend``)."""
    raw = pl.col("hour").cast(pl.String).str.strip_chars()
    day = raw.str.slice(0, 6).str.strptime(pl.Date, "%y%m%d", strict=False)
    iso = day.dt.weekday()  # 1 = Monday .. 7 = Sunday
    return [
        raw.str.slice(6, 2).cast(pl.Int32, strict=False).cast(pl.String).alias("hour"),
        (iso % 7).cast(pl.String).alias("weekday"),
        iso.is_in([6, 7]).cast(pl.Int8).cast(pl.String).alias("weekend"),
    ]


def hour_check() -> tuple[str, str, pl.Expr]:
    raw = pl.col("hour").cast(pl.String).str.strip_chars()
    bad = raw.is_null() | ~raw.str.contains(r"^\d{8}$") | raw.str.slice(0, 6).str.strptime(
        pl.Date, "%y%m%d", strict=False
    ).is_null()
    return ("hour", "is not a YYMMDDHH timestamp", bad)


class AvazuX4(DatasetAdapter):
    """Avazu_x4 from the published ``train.csv`` / ``valid.csv`` / ``test.csv`` (which still hold
    ``id`` and the raw ``hour``), or from the raw Kaggle ``train.csv`` alone (split first)."""

    name = "avazu_x4"
    title = "Avazu_x4"
    summary = "Avazu mobile ads, 24 categorical fields incl. hour/weekday/weekend, 8:1:1 (AutoInt split, seed 2018)"
    reference = "https://github.com/reczoo/Datasets/tree/main/Avazu/Avazu_x4"
    files = (
        FileSpec("train", "train.csv", md5="de3a27264cdabf66adf09df82328ccaa", rows=32_343_172),
        FileSpec("valid", "valid.csv", md5="33232931d84d6452d3f956e936cab2c9", rows=4_042_897),
        FileSpec("test", "test.csv", md5="3ebb774a9ca74d05919b84a3d402986d", rows=4_042_898),
    )
    urls = (
        "https://huggingface.co/datasets/reczoo/Avazu_x4/resolve/main/Avazu_x4.zip?download=true",
        "https://zenodo.org/record/5700987/files/Avazu_x4.zip",
    )

    def __init__(self, variant: Variant = "001"):
        if variant not in _SETTINGS:
            raise ValueError(f"avazu_x4 variant must be one of {sorted(_SETTINGS)}, got {variant!r}")
        self.variant = variant
        self.min_count, self.embedding_dim = _SETTINGS[variant]
        self.name = "avazu_x4" if variant == "001" else f"avazu_x4_{variant}"
        self.title = f"Avazu_x4_{variant}"

    def schema(self) -> FeatureSchema:
        feats = [dict(f, fill_value="") for f in categorical(FIELDS, min_count=self.min_count)]
        return make_schema(feats, label="click")

    @staticmethod
    def split_raw(raw_file: str | Path, out_dir: str | Path, *, progress: bool = True) -> dict[str, Path]:
        """Split the raw Kaggle ``train.csv`` (header ``id,click,hour,...``) into BARS' Avazu_x4
        ``train.csv`` / ``valid.csv`` / ``test.csv`` in ``out_dir`` (stratified by ``click``, 10
        folds, seed 2018; see :mod:`ctrkit.data.datasets._split`)."""
        return split_raw(raw_file, out_dir, columns=COLUMNS, label="click", header=True, separator=",", progress=progress)

    def locate(self, source_dir: str | Path, *, paths: Mapping[str, str | Path] | None = None) -> dict[str, Path]:
        """The published split, or the raw Kaggle file under the key ``"raw"`` when the directory
        holds only ``train.csv`` (or ``train``) without ``valid.csv``/``test.csv``."""
        base = Path(source_dir)
        if not paths and base.is_dir() and not (base / "valid.csv").exists() and not (base / "test.csv").exists():
            for name in RAW_NAMES:
                if (base / name).is_file():
                    return {"raw": base / name}
        try:
            return super().locate(source_dir, paths=paths)
        except DataError as e:
            raise DataError(f"{e} (or put the raw Kaggle train.csv alone there to split it)") from None

    def verify(self, paths: Mapping[str, Path], *, progress: bool = False) -> dict[str, str]:
        if "raw" in paths:
            return {"raw": "no published checksum"}
        return super().verify(paths, progress=progress)

    def preprocess(
        self, paths: Mapping[str, Path], work_dir: Path, on_bad_rows: BadRows, *, progress: bool = False
    ) -> dict[str, SourceFile]:
        if "raw" in paths:
            paths = self.split_raw(paths["raw"], work_dir / "split", progress=progress)
        schema = self.schema()
        exprs = [pl.col("click"), *[pl.col(c) for c in RAW_FIELDS], *calendar_exprs()]
        out: dict[str, SourceFile] = {}
        self.dropped: dict[str, int] = {}
        for split, p in paths.items():
            src, dropped = derive(
                self.file_spec(split).source(p),
                work_dir / "derived" / f"{split}.parquet",
                schema=schema,
                raw_columns=["click", "hour", *RAW_FIELDS],
                exprs=exprs,
                checks=[hour_check()],
                on_bad_rows=on_bad_rows,
                key={"adapter": "avazu_x4", "exprs": "calendar-v1"},
            )
            out[split] = src
            self.dropped[split] = dropped
        return out

"""Criteo_x4 (BARS): Kaggle Criteo split 8:1:1 with AutoInt's stratified 10-fold procedure.

Facts (reczoo/Datasets ``Criteo/Criteo_x4/README.md`` and its split script; FuxiCTR
``config/dataset_config/Criteo.yaml``; reczoo/BARS ``DeepFM_criteo_x4_001`` logs):

* split: ``StratifiedKFold(n_splits=10, shuffle=True, random_state=2018)`` on the raw
  ``train.txt`` (sklearn 0.19.1), fold 0 = test, fold 1 = valid, the rest = train:
  36,672,493 / 4,584,062 / 4,584,062 rows; reproduced in numpy by :func:`split_raw`;
* columns: ``Label``, ``I1`` .. ``I13``, ``C1`` .. ``C26`` (the raw file: tab-separated, no header);
* preprocessing: every ``I`` value ``x`` (missing -> 0) becomes the category
  ``floor(ln(x)^2)`` if ``x > 2`` else ``int(x)`` (FuxiCTR's ``convert_to_bucket``; the README's
  "log2" wording is loose, the code squares the natural log); every field, bucketized ``I``
  included, keeps values seen at least ``min_categr_count`` times in train:
  10 for setting ``001`` (``embedding_dim=16``), 2 for ``002`` (``embedding_dim=40``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping

from ctrkit.data.datasets._base import DatasetAdapter, FileSpec, categorical, make_schema
from ctrkit.data.datasets._split import split_raw
from ctrkit.data.readers import SourceFile
from ctrkit.data.store import BadRows
from ctrkit.errors import DataError
from ctrkit.schema import FeatureSchema

NUMERIC = tuple(f"I{i}" for i in range(1, 14))
CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))
COLUMNS = ("Label", *NUMERIC, *CATEGORICAL)
#: Name of the raw Kaggle file (inside ``dac.tar.gz``).
RAW_NAME = "train.txt"

Variant = Literal["001", "002"]
_SETTINGS: dict[str, tuple[int, int]] = {"001": (10, 16), "002": (2, 40)}  # min_count, embedding_dim


class CriteoX4(DatasetAdapter):
    """Criteo_x4 from the published ``train.csv`` / ``valid.csv`` / ``test.csv``, or from the raw
    Kaggle ``train.txt`` (split on the fly into the work directory, see :meth:`split_raw`)."""

    name = "criteo_x4"
    title = "Criteo_x4"
    summary = "Criteo display ads, 13 bucketized numeric + 26 categorical, 8:1:1 (AutoInt split, seed 2018)"
    reference = "https://github.com/reczoo/Datasets/tree/main/Criteo/Criteo_x4"
    files = (
        FileSpec("train", "train.csv", md5="4a53bb7cbc0e4ee25f9d6a73ed824b1a", rows=36_672_493),
        FileSpec("valid", "valid.csv", md5="fba5428b22895016e790e2dec623cb56", rows=4_584_062),
        FileSpec("test", "test.csv", md5="cfc37da0d75c4d2d8778e76997df2976", rows=4_584_062),
    )
    urls = (
        "https://huggingface.co/datasets/reczoo/Criteo_x4/resolve/main/Criteo_x4.zip?download=true",
        "https://zenodo.org/record/5700987/files/Criteo_x4.zip",
    )

    def __init__(self, variant: Variant = "001"):
        if variant not in _SETTINGS:
            raise ValueError(f"criteo_x4 variant must be one of {sorted(_SETTINGS)}, got {variant!r}")
        self.variant = variant
        self.min_count, self.embedding_dim = _SETTINGS[variant]
        self.name = "criteo_x4" if variant == "001" else f"criteo_x4_{variant}"
        self.title = f"Criteo_x4_{variant}"

    def schema(self) -> FeatureSchema:
        numeric = [
            {
                "name": n,
                "kind": "numeric",
                "fill_value": 0.0,
                "bucketize": {"method": "criteo_log2"},
                "min_count": self.min_count,
            }
            for n in NUMERIC
        ]
        cats = [dict(f, fill_value="") for f in categorical(CATEGORICAL, min_count=self.min_count)]
        return make_schema(numeric + cats, label="Label")

    # ------------------------------------------------------------------ raw Kaggle file
    @staticmethod
    def split_raw(raw_file: str | Path, out_dir: str | Path, *, progress: bool = True) -> dict[str, Path]:
        """Split the raw Kaggle ``train.txt`` (tab-separated, no header, 40 columns) into BARS'
        Criteo_x4 ``train.csv`` / ``valid.csv`` / ``test.csv`` in ``out_dir`` (see
        :mod:`ctrkit.data.datasets._split`: stratified 10 folds, seed 2018, reproduced in numpy)."""
        return split_raw(raw_file, out_dir, columns=COLUMNS, label="Label", header=False, separator="\t", progress=progress)

    def locate(self, source_dir: str | Path, *, paths: Mapping[str, str | Path] | None = None) -> dict[str, Path]:
        """The published split files, or (when only the raw ``train.txt`` is there) the raw file
        under the key ``"raw"``."""
        base = Path(source_dir)
        if not paths and base.is_dir() and not (base / "valid.csv").exists() and (base / RAW_NAME).exists():
            return {"raw": base / RAW_NAME}
        try:
            return super().locate(source_dir, paths=paths)
        except DataError as e:
            raise DataError(f"{e} (or put the raw Kaggle {RAW_NAME} there to split it)") from None

    def verify(self, paths: Mapping[str, Path], *, progress: bool = False) -> dict[str, str]:
        if "raw" in paths:  # no checksum is published for the raw file; the split files get one
            return {"raw": "no published checksum"}
        return super().verify(paths, progress=progress)

    def preprocess(
        self, paths: Mapping[str, Path], work_dir: Path, on_bad_rows: BadRows, *, progress: bool = False
    ) -> dict[str, SourceFile]:
        if "raw" in paths:
            split = self.split_raw(paths["raw"], work_dir / "split", progress=progress)
            return {s: self.file_spec(s).source(p) for s, p in split.items()}
        return super().preprocess(paths, work_dir, on_bad_rows, progress=progress)

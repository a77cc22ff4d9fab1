"""Frappe_x1 (BARS): context-aware app usage, 10 categorical fields, random 7:2:1 split.

Facts (reczoo/Datasets ``Frappe/Frappe_x1/README.md``; reczoo/BARS ``DeepFM_frappe_x1`` logs):
202,027 / 57,722 / 28,860 rows; every field categorical with ``min_categr_count=1``; label column
``label``; BARS fixes ``embedding_dim=10``. The CSVs use CRLF line ends.
"""

from __future__ import annotations

from ctrkit.data.datasets._base import DatasetAdapter, FileSpec, categorical, make_schema
from ctrkit.schema import FeatureSchema

FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city")


class FrappeX1(DatasetAdapter):
    """Frappe_x1 from ``train.csv`` / ``valid.csv`` / ``test.csv``.

    ``train_reconstructed.csv`` is accepted in place of ``train.csv`` (the name of a train file
    rebuilt from the raw Frappe log when the official one is unavailable); it is not the published
    file, so ``verify`` refuses it.
    """

    name = "frappe_x1"
    title = "Frappe_x1"
    summary = "Frappe app usage, 10 categorical fields, 7:2:1 (AFN split)"
    reference = "https://github.com/reczoo/Datasets/tree/main/Frappe/Frappe_x1"
    files = (
        FileSpec("train", "train.csv", md5="ba7306e6c4fc19dd2cd84f2f0596d158", rows=202_027,
                 alternates=("train_reconstructed.csv",)),
        FileSpec("valid", "valid.csv", md5="88d51bf2173505436d3a8f78f2a59da8", rows=57_722),
        FileSpec("test", "test.csv", md5="3470f6d32713dc5f7715f198ca7c612a", rows=28_860),
    )  # fmt: skip
    urls = (
        "https://huggingface.co/datasets/reczoo/Frappe_x1/resolve/main/Frappe_x1.zip?download=true",
        "https://zenodo.org/record/5700987/files/Frappe_x1.zip",
    )
    embedding_dim = 10

    def schema(self) -> FeatureSchema:
        return make_schema(categorical(FIELDS, min_count=1), label="label")

"""Avazu_x1 (BARS): the AFN release of Avazu, 22 anonymised categorical fields, 7:1:2 split.

Facts (reczoo/Datasets ``Avazu/Avazu_x1/README.md``; reczoo/BARS ``DeepFM_avazu_x1`` logs):
28,300,276 / 4,042,897 / 8,085,794 rows; ``feat_1`` .. ``feat_22`` categorical with
``min_categr_count=1``; label ``label``; ``embedding_dim=10``.
"""

from __future__ import annotations

from ctrkit.data.datasets._base import DatasetAdapter, FileSpec, categorical, make_schema
from ctrkit.schema import FeatureSchema

FIELDS = tuple(f"feat_{i}" for i in range(1, 23))


class AvazuX1(DatasetAdapter):
    """Avazu_x1 from ``train.csv`` / ``valid.csv`` / ``test.csv``."""

    name = "avazu_x1"
    title = "Avazu_x1"
    summary = "Avazu mobile ads (AFN release), 22 categorical fields, 7:1:2"
    reference = "https://github.com/reczoo/Datasets/tree/main/Avazu/Avazu_x1"
    files = (
        FileSpec("train", "train.csv", md5="f1114a07aea9e996842c71648e0f6395", rows=28_300_276),
        FileSpec("valid", "valid.csv", md5="d9568f246357d156c4b8030fadb8b623", rows=4_042_897),
        FileSpec("test", "test.csv", md5="9e2fe9c48705c9315ae7a0953eb57acf", rows=8_085_794),
    )
    urls = (
        "https://huggingface.co/datasets/reczoo/Avazu_x1/resolve/main/Avazu_x1.zip?download=true",
        "https://zenodo.org/record/5700987/files/Avazu_x1.zip",
    )
    embedding_dim = 10

    def schema(self) -> FeatureSchema:
        return make_schema(categorical(FIELDS, min_count=1), label="label")

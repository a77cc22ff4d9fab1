"""Criteo_x1 (BARS): the AFN release of Criteo, 13 numeric + 26 categorical fields, 7:2:1 split.

Facts (reczoo/Datasets ``Criteo/Criteo_x1/README.md``; reczoo/BARS ``DeepFM_criteo_x1`` logs):
33,003,326 / 8,250,124 / 4,587,167 rows; ``I1`` .. ``I13`` numeric, used as given (the AFN files
are already scaled; FuxiCTR applies no normalizer, missing -> 0); ``C1`` .. ``C26`` categorical;
``min_categr_count=1``; label ``label``; ``embedding_dim=10``.
"""

from __future__ import annotations

from ctrkit.data.datasets._base import DatasetAdapter, FileSpec, categorical, make_schema
from ctrkit.schema import FeatureSchema

NUMERIC = tuple(f"I{i}" for i in range(1, 14))
CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))


class CriteoX1(DatasetAdapter):
    """Criteo_x1 from ``train.csv`` / ``valid.csv`` / ``test.csv``."""

    name = "criteo_x1"
    title = "Criteo_x1"
    summary = "Criteo display ads (AFN release), 13 numeric + 26 categorical, 7:2:1"
    reference = "https://github.com/reczoo/Datasets/tree/main/Criteo/Criteo_x1"
    files = (
        FileSpec("train", "train.csv", md5="30b89c1c7213013b92df52ec44f52dc5", rows=33_003_326),
        FileSpec("valid", "valid.csv", md5="f73c71fb3c4f66b6ebdfa032646bea72", rows=8_250_124),
        FileSpec("test", "test.csv", md5="2c48b26e84c04a69b948082edae46f8c", rows=4_587_167),
    )
    urls = (
        "https://huggingface.co/datasets/reczoo/Criteo_x1/resolve/main/Criteo_x1.zip?download=true",
        "https://zenodo.org/record/5700987/files/Criteo_x1.zip",
    )
    embedding_dim = 10

    def schema(self) -> FeatureSchema:
        numeric = [{"name": n, "kind": "numeric", "fill_value": 0.0} for n in NUMERIC]
        return make_schema(numeric + categorical(CATEGORICAL, min_count=1), label="label")

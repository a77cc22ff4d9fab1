"""MovielensLatest_x1 (BARS): tag recommendation (user, item, tag), random 7:2:1 split.

Facts (reczoo/Datasets ``MovieLens/MovielensLatest_x1/README.md``; reczoo/BARS
``DeepFM_movielenslatest_x1`` logs): 1,404,801 / 401,373 / 200,686 rows in the README (the BARS
log counts 401,372 validation rows); ``user_id``, ``item_id``, ``tag_id`` categorical with
``min_categr_count=1``; label ``label``; ``embedding_dim=10``.
"""

from __future__ import annotations

from ctrkit.data.datasets._base import DatasetAdapter, FileSpec, categorical, make_schema
from ctrkit.schema import FeatureSchema

FIELDS = ("user_id", "item_id", "tag_id")


class MovielensLatestX1(DatasetAdapter):
    """MovielensLatest_x1 from ``train.csv`` / ``valid.csv`` / ``test.csv``."""

    name = "movielenslatest_x1"
    title = "MovielensLatest_x1"
    summary = "MovieLens tagging (user, item, tag), 7:2:1 (AFN split)"
    reference = "https://github.com/reczoo/Datasets/tree/main/MovieLens/MovielensLatest_x1"
    files = (
        FileSpec("train", "train.csv", md5="efc8bceeaa0e895d566470fc99f3f271", rows=1_404_801),
        FileSpec("valid", "valid.csv", md5="e1930223a5026e910ed5a48687de8af1", rows=401_372),
        FileSpec("test", "test.csv", md5="54e8c6baff2e059fe067fb9b69e692d0", rows=200_686),
    )
    urls = (
        "https://huggingface.co/datasets/reczoo/MovielensLatest_x1/resolve/main/MovielensLatest_x1.zip?download=true",
        "https://zenodo.org/record/5700987/files/MovielensLatest_x1.zip",
    )
    embedding_dim = 10

    def schema(self) -> FeatureSchema:
        return make_schema(categorical(FIELDS, min_count=1), label="label")

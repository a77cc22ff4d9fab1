"""KKBox_x1 (BARS): WSDM 2018 KKBox music recommendation, random 8:1:1 split.

Facts (reczoo/Datasets ``KKBox/KKBox_x1/README.md``; FuxiCTR ``config/dataset_config/KKBox.yaml``
and its ``extract_country_code`` / ``bucketize_age``; reczoo/BARS ``DeepFM_kkbox_x1`` logs):
5,901,932 / 737,743 / 737,743 rows; label ``label``; categorical ``msno``, ``song_id``,
``source_system_tab``, ``source_screen_name``, ``source_type``, ``city``, ``gender``,
``registered_via``, ``language``; sequences ``genre_ids`` and ``artist_name`` with ``max_len: 3``;
``isrc`` -> its first two characters (country code); ``bd`` (age) -> bucket ``"1"``..``"7"`` by
decades (``<= 10``, ``<= 20``, .. ``<= 60``, older), ``""`` outside ``[1, 95]`` or unparsable;
``min_categr_count=10`` for every field; ``embedding_dim=128``.

Not established from the published files: the token separator inside ``genre_ids`` /
``artist_name`` in the KKBox_x1 CSVs (BARS' config sets none, so FuxiCTR 1.x's default ``" "``
applies, which is the default here; the raw Kaggle ``genre_ids`` use ``|``) and which end a
too-long sequence is cut from (FuxiCTR 1.x pads and truncates at the same end, default ``"post"``:
the first ``max_len`` tokens are kept). Both are constructor options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping

import polars as pl

from ctrkit.data.datasets._base import DatasetAdapter, FileSpec, categorical, derive, make_schema
from ctrkit.data.readers import SourceFile
from ctrkit.data.store import BadRows
from ctrkit.schema import FeatureSchema

CATEGORICAL = (
    "msno", "song_id", "source_system_tab", "source_screen_name", "source_type", "city", "gender",
    "registered_via", "language",
)  # fmt: skip
SEQUENCES = ("genre_ids", "artist_name")
DERIVED = ("isrc", "bd")
MIN_COUNT = 10


def country_code() -> pl.Expr:
    """FuxiCTR's ``extract_country_code``: ``isrc[0:2]``, ``""`` when missing."""
    return pl.col("isrc").cast(pl.String).fill_null("").str.slice(0, 2).alias("isrc")


def age_bucket() -> pl.Expr:
    """FuxiCTR's ``bucketize_age``: ``""`` outside [1, 95] (or unparsable), else ``"1"`` for
    ``<= 10``, ``"2"`` for ``<= 20`` .. ``"6"`` for ``<= 60``, ``"7"`` above."""
    age = pl.col("bd").cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    expr = pl.when(age.is_null() | (age < 1) | (age > 95)).then(pl.lit(""))
    for i, upper in enumerate((10, 20, 30, 40, 50, 60), start=1):
        expr = expr.when(age <= upper).then(pl.lit(str(i)))
    return expr.otherwise(pl.lit("7")).alias("bd")


class KKBoxX1(DatasetAdapter):
    """KKBox_x1 from ``train.csv`` / ``valid.csv`` / ``test.csv`` (country code and age bucket
    written once into Parquet files in the work directory)."""

    name = "kkbox_x1"
    title = "KKBox_x1"
    summary = "KKBox music (WSDM 2018), 11 categorical + 2 sequence fields, 8:1:1"
    reference = "https://github.com/reczoo/Datasets/tree/main/KKBox/KKBox_x1"
    files = (
        FileSpec("train", "train.csv", md5="195b1ae8fc2d9267d7c8656c07ea1304", rows=5_901_932),
        FileSpec("valid", "valid.csv", md5="398e97ac139611a09bd61a58e4240a3e", rows=737_743),
        FileSpec("test", "test.csv", md5="8c5f7add05a6f5258b6b3bcc00ba640b", rows=737_743),
    )
    urls = (
        "https://huggingface.co/datasets/reczoo/KKBox_x1/resolve/main/KKBox_x1.zip?download=true",
    )
    embedding_dim = 128

    def __init__(self, sequence_delimiter: str = " ", truncate: Literal["pre", "post"] = "post"):
        self.sequence_delimiter = sequence_delimiter
        self.truncate = truncate

    def schema(self) -> FeatureSchema:
        feats = [dict(f, fill_value="") for f in categorical((*CATEGORICAL, *DERIVED), min_count=MIN_COUNT)]
        feats += [
            {
                "name": n,
                "kind": "sequence",
                "delimiter": self.sequence_delimiter,
                "max_len": 3,
                "truncate": self.truncate,
                "min_count": MIN_COUNT,
            }
            for n in SEQUENCES
        ]
        return make_schema(feats, label="label")

    def preprocess(
        self, paths: Mapping[str, Path], work_dir: Path, on_bad_rows: BadRows, *, progress: bool = False
    ) -> dict[str, SourceFile]:
        schema = self.schema()
        passthrough = ["label", *CATEGORICAL, *SEQUENCES]
        exprs = [*[pl.col(c) for c in passthrough], country_code(), age_bucket()]
        out: dict[str, SourceFile] = {}
        self.dropped: dict[str, int] = {}
        for split, p in paths.items():
            src, dropped = derive(
                self.file_spec(split).source(p),
                work_dir / "derived" / f"{split}.parquet",
                schema=schema,
                raw_columns=[*passthrough, *DERIVED],
                exprs=exprs,
                on_bad_rows=on_bad_rows,
                key={"adapter": "kkbox_x1", "exprs": "isrc-bd-v1"},
            )
            out[split] = src
            self.dropped[split] = dropped
        return out

"""FuxiCTR's own preprocessing of a Criteo-shaped train/valid/test, as its run scripts do it.

Runs inside the FuxiCTR virtual environment that ``benchmarks/preprocess_speed.py`` creates (never
in ctrkit's). It follows FuxiCTR's ``model_zoo/*/run_expid.py``: a ``FeatureProcessor`` built from
the dataset config, then ``build_dataset(feature_encoder, **params)``, which fits the vocabularies
on train and writes ``train/valid/test.parquet`` plus ``feature_map.json`` / ``feature_vocab.json``
/ ``feature_processor.pkl`` into ``data_root/dataset_id``. The feature settings are BARS' Criteo_x4
config (``criteo_x4_9ea3bdfc``): every ``I`` field is a categorical made by FuxiCTR's Criteo
``convert_to_bucket`` (floor(log(x)^2) for x > 2, else int(x); missing -> 0), every ``C`` field a
categorical (missing -> ""), ``min_categr_count: 10``.

    python fuxictr_preprocess.py DATA_DIR OUT_ROOT [--label click] [--min-count 10] [--sep TAB]

Prints one JSON line (rows per split, seconds, versions) at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("out_root")
    ap.add_argument("--label", default="click")
    ap.add_argument("--min-count", type=int, default=10)
    ap.add_argument("--sep", default="\t")
    ap.add_argument("--ext", default="tsv")
    ap.add_argument("--numeric", type=int, default=13)
    ap.add_argument("--categorical", type=int, default=26)
    args = ap.parse_args()

    t0 = time.perf_counter()
    import fuxictr
    import pandas
    import polars
    from fuxictr.datasets.criteo import CustomizedFeatureProcessor as FeatureProcessor
    from fuxictr.preprocess import build_dataset

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    dataset_id = "criteo_like"
    # FuxiCTR's read_data() only accepts paths ending in ".csv" (the separator is configurable):
    # link the tab-separated files under that name; the bytes read are the very same.
    link_dir = os.path.join(args.out_root, "input")
    os.makedirs(link_dir, exist_ok=True)
    for split in ("train", "valid", "test"):
        link = os.path.join(link_dir, f"{split}.csv")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.abspath(os.path.join(args.data_dir, f"{split}.{args.ext}")), link)
    params = {
        "dataset_id": dataset_id,
        "data_root": args.out_root,
        "data_format": "csv",
        "train_data": os.path.join(link_dir, "train.csv"),
        "valid_data": os.path.join(link_dir, "valid.csv"),
        "test_data": os.path.join(link_dir, "test.csv"),
        "min_categr_count": args.min_count,
        "feature_cols": [
            {
                "name": [f"I{i}" for i in range(1, args.numeric + 1)],
                "active": True,
                "dtype": "float",
                "type": "categorical",
                "preprocess": "convert_to_bucket",
                "fill_na": 0,
            },
            {
                "name": [f"C{i}" for i in range(1, args.categorical + 1)],
                "active": True,
                "dtype": "str",
                "type": "categorical",
                "fill_na": "",
            },
        ],
        "label_col": {"name": args.label, "dtype": "float"},
        # read_data() forwards these to its CSV scan
        "sep": args.sep,
    }
    out = os.path.join(args.out_root, dataset_id)
    shutil.rmtree(out, ignore_errors=True)  # build_dataset skips an existing feature_map.json
    feature_encoder = FeatureProcessor(**params)
    train, valid, test = build_dataset(feature_encoder, **params)
    rows = {}
    import pyarrow.parquet as pq

    for split, path in (("train", train), ("valid", valid), ("test", test)):
        rows[split] = pq.ParquetFile(path).metadata.num_rows
    try:
        import ray

        ray.shutdown()
    except Exception:
        pass
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds_in_process": time.perf_counter() - t0,
                "fuxictr": getattr(fuxictr, "__version__", None) or _dist_version("fuxictr"),
                "polars": polars.__version__,
                "pandas": pandas.__version__,
                "ray": _dist_version("ray"),
                "output": out,
            }
        ),
        flush=True,
    )


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()

"""FuxiCTR side of benchmarks/train_speed.py (run with its own venv's python).

PyPI's fuxictr ships layers, the data pipeline and BaseModel, but no model_zoo: DeepFM and DCNv2
below are thin classes written here against fuxictr's public layers (FeatureEmbedding,
FactorizationMachine = LogisticRegression + inner-product sum, MLP_Block, CrossNetV2) with the same
structure as FuxiCTR's model_zoo/DeepFM and model_zoo/DCNv2. Pipeline: fuxictr's own
FeatureProcessor + build_dataset (polars scan -> Ray transform -> parquet), RankDataLoader
(parquet / Ray Data), BaseModel.fit (one epoch, Adam 1e-3, grad-norm clip 10, a validation pass at
the end of the epoch) and BaseModel.evaluate on test. Prints one JSON line.

Feature handling (as close to ctrkit's as FuxiCTR allows): numerics fill 0, log1p (a FeatureProcessor
preprocess hook), then FuxiCTR's MinMaxScaler (without it, FuxiCTR's numeric embeddings -- nn.Linear
(1, d) with its default init -- put the initial logits at +-50 and the loss diverges: train loss 7.5,
test AUC 0.49 in a check run), embedded as value x per-field vector; categoricals min_categr_count 1, missing = "" (own token).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import time
from pathlib import Path

T_START = time.perf_counter()

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from fuxictr.features import FeatureMap  # noqa: E402
from fuxictr.preprocess import FeatureProcessor, build_dataset  # noqa: E402
from fuxictr.pytorch.dataloaders import RankDataLoader  # noqa: E402
from fuxictr.pytorch.layers import CrossNetV2, FactorizationMachine, FeatureEmbedding, MLP_Block  # noqa: E402
from fuxictr.pytorch.models import BaseModel  # noqa: E402
from fuxictr.pytorch.torch_utils import seed_everything  # noqa: E402


class LogFeatureProcessor(FeatureProcessor):
    """FuxiCTR's FeatureProcessor plus a ``preprocess: log1p`` hook (ctrkit's ``normalizer: log``)."""

    def log1p(self, col):
        return pl.col(col).cast(pl.Float64).log1p()


class DeepFM(BaseModel):
    """model_zoo/DeepFM structure: FM (LR + pairwise) + MLP on the flattened field embeddings."""

    def __init__(self, feature_map, model_id="DeepFM", gpu=-1, learning_rate=1e-3, embedding_dim=10,
                 hidden_units=(64, 64, 64), hidden_activations="ReLU", net_dropout=0, batch_norm=False,
                 embedding_regularizer=None, net_regularizer=None, **kwargs):
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=embedding_regularizer,
                         net_regularizer=net_regularizer, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.fm = FactorizationMachine(feature_map)
        self.mlp = MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1, hidden_units=list(hidden_units),
                             hidden_activations=hidden_activations, output_activation=None,
                             dropout_rates=net_dropout, batch_norm=batch_norm)
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X)
        y_pred = self.fm(X, feature_emb)
        y_pred = y_pred + self.mlp(feature_emb.flatten(start_dim=1))
        return {"y_pred": self.output_activation(y_pred)}


class DCNv2(BaseModel):
    """model_zoo/DCNv2 structure, ``parallel``: fc([CrossNetV2(x0), MLP(x0)])."""

    def __init__(self, feature_map, model_id="DCNv2", gpu=-1, learning_rate=1e-3, embedding_dim=10,
                 parallel_dnn_hidden_units=(400, 400, 400), dnn_activations="ReLU", num_cross_layers=3,
                 net_dropout=0, batch_norm=False, embedding_regularizer=None, net_regularizer=None, **kwargs):
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=embedding_regularizer,
                         net_regularizer=net_regularizer, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        input_dim = feature_map.sum_emb_out_dim()
        self.crossnet = CrossNetV2(input_dim, num_cross_layers)
        self.parallel_dnn = MLP_Block(input_dim=input_dim, output_dim=None, hidden_units=list(parallel_dnn_hidden_units),
                                      hidden_activations=dnn_activations, output_activation=None,
                                      dropout_rates=net_dropout, batch_norm=batch_norm)
        self.fc = nn.Linear(input_dim + parallel_dnn_hidden_units[-1], 1)
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X, flatten_emb=True)
        final_out = torch.cat([self.crossnet(feature_emb), self.parallel_dnn(feature_emb)], dim=-1)
        return {"y_pred": self.output_activation(self.fc(final_out))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", default="DeepFM")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.work.exists():
        shutil.rmtree(args.work)
    raw = args.work / "raw"
    raw.mkdir(parents=True)
    for s in ("train", "valid", "test"):  # fuxictr's reader wants a .csv suffix
        (raw / f"{s}.csv").symlink_to((args.data / f"{s}.tsv").resolve())
    seed_everything(2021)
    dataset_id = "synth"
    feature_cols = [
        {"name": [f"I{i}" for i in range(1, 14)], "active": True, "dtype": "float", "type": "numeric", "preprocess": "log1p",
         "normalizer": "MinMaxScaler"},
        {"name": [f"C{i}" for i in range(1, 27)], "active": True, "dtype": "str", "type": "categorical"},
    ]
    label_col = {"name": "click", "dtype": float}
    params = {
        "model_id": args.model, "gpu": -1, "learning_rate": 1e-3, "embedding_dim": 16, "net_dropout": 0,
        "batch_norm": False, "embedding_regularizer": 0, "net_regularizer": 0, "optimizer": "adam",
        "loss": "binary_crossentropy", "verbose": 0, "model_root": str(args.work / "ckpt"),
        "metrics": ["logloss", "AUC"], "monitor": "AUC", "monitor_mode": "max", "batch_size": 10_000,
        "epochs": 1, "shuffle": True, "seed": 2021, "data_format": "parquet", "max_gradient_norm": 10.0,
    }
    if args.model == "DeepFM":
        params.update(hidden_units=[400, 400, 400], hidden_activations="ReLU")
    else:
        params.update(model_structure="parallel", num_cross_layers=3, parallel_dnn_hidden_units=[400, 400, 400],
                      dnn_activations="ReLU")

    t = time.perf_counter()
    fp = LogFeatureProcessor(feature_cols=feature_cols, label_col=label_col, dataset_id=dataset_id,
                             data_root=str(args.work / "data"))
    train_data, valid_data, test_data = build_dataset(
        fp, train_data=str(raw / "train.csv"), valid_data=str(raw / "valid.csv"), test_data=str(raw / "test.csv"),
        data_format="csv", sep="\t", min_categr_count=1)
    feature_map = FeatureMap(dataset_id, os.path.join(str(args.work / "data"), dataset_id))
    feature_map.load(os.path.join(feature_map.data_dir, "feature_map.json"), params)
    prep = time.perf_counter() - t

    os.makedirs(os.path.join(params["model_root"], dataset_id), exist_ok=True)
    model = (DeepFM if args.model == "DeepFM" else DCNv2)(feature_map, **params)
    eval_s = [0.0]
    orig_eval_step = model.eval_step

    def timed_eval_step():  # the end-of-epoch validation pass is not training time
        t0 = time.perf_counter()
        orig_eval_step()
        eval_s[0] += time.perf_counter() - t0

    model.eval_step = timed_eval_step
    p = {k: v for k, v in params.items() if k not in ("batch_size", "shuffle", "data_format")}
    train_gen, valid_gen = RankDataLoader(feature_map, stage="train", train_data=train_data, valid_data=valid_data,
                                          batch_size=10_000, shuffle=True, data_format="parquet")
    n_train = train_gen.num_samples
    t = time.perf_counter()
    model.fit(train_gen, validation_data=valid_gen, epochs=1, max_gradient_norm=10.0)
    fit_s = time.perf_counter() - t
    train_s = fit_s - eval_s[0]
    test_gen = RankDataLoader(feature_map, stage="test", test_data=test_data, batch_size=10_000,
                              shuffle=False, data_format="parquet")
    t = time.perf_counter()
    res = model.evaluate(test_gen)
    test_s = time.perf_counter() - t
    print(json.dumps({
        "library": "fuxictr",
        "model": args.model,
        "preprocess_s": prep,
        "train_samples_per_s": n_train / train_s,
        "train_s": train_s,
        "fit_s_incl_valid": fit_s,
        "eval_samples_per_s": test_gen.num_samples / test_s,
        "test_auc": res["AUC"],
        "test_logloss": res["logloss"],
        "parameters": sum(q.numel() for q in model.parameters()),
        "e2e_s": time.perf_counter() - T_START,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "peak_rss_note": "driver process only (Ray workers not included)",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "features": "numerics: fill 0, log1p (preprocess hook) + MinMaxScaler, numeric embedding value x vector; categoricals: min_categr_count 1, missing '' own token; "
                    "models: thin DeepFM/DCNv2 over PyPI fuxictr layers (no model_zoo on PyPI)",
    }))
    try:
        import ray

        ray.shutdown()
    except Exception:
        pass


if __name__ == "__main__":
    main()

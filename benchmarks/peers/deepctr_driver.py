"""DeepCTR-Torch side of benchmarks/train_speed.py (run with its own venv's python).

Its shipped models and data handling, as in its Criteo example: pandas ``read_csv``, missing
categoricals -> "-1", sklearn ``LabelEncoder`` per categorical field, numerics fill 0 then log1p
(ctrkit's normalizer; the example uses MinMaxScaler) as ``DenseFeat`` (in DeepCTR-Torch dense
features enter the DNN / cross input only, not the FM). ``DeepFM`` (400-400-400, no dropout, no BN,
L2 regularisers 0) and, for DCNv2, ``DCN(parameterization="matrix")`` = DCN-V2's full-rank cross
(``DCNMix`` is the low-rank mixture variant, a different FLOP count). ``model.fit`` one epoch,
batch 10,000, Adam 1e-3; ``model.predict`` on test. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

T_START = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", default="DeepFM")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.preprocessing import LabelEncoder

    from deepctr_torch.inputs import DenseFeat, SparseFeat, get_feature_names
    from deepctr_torch.models import DCN, DeepFM

    t = time.perf_counter()
    parts = {s: pd.read_csv(args.data / f"{s}.tsv", sep="\t", dtype={f"C{i}": str for i in range(1, 27)}) for s in ("train", "test")}
    n_train = len(parts["train"])
    data = pd.concat([parts["train"], parts["test"]], ignore_index=True)
    sparse = [f"C{i}" for i in range(1, 27)]
    dense = [f"I{i}" for i in range(1, 14)]
    data[sparse] = data[sparse].fillna("-1")
    data[dense] = np.log1p(data[dense].fillna(0).astype("float32"))
    for f in sparse:  # the example fits each encoder on the whole frame
        data[f] = LabelEncoder().fit_transform(data[f])
    cols = [SparseFeat(f, data[f].max() + 1, embedding_dim=16) for f in sparse] + [DenseFeat(f, 1) for f in dense]
    names = get_feature_names(cols)
    train, test = data.iloc[:n_train], data.iloc[n_train:]
    x_train = {n: train[n].values for n in names}
    x_test = {n: test[n].values for n in names}
    y_train = train["click"].values.astype("float32")
    y_test = test["click"].values
    prep = time.perf_counter() - t

    common = dict(dnn_hidden_units=(400, 400, 400), dnn_dropout=0, dnn_use_bn=False, l2_reg_embedding=0,
                  l2_reg_linear=0, l2_reg_dnn=0, init_std=1e-4, seed=2021, task="binary", device="cpu")
    if args.model == "DeepFM":
        model = DeepFM(cols, cols, **common)
    else:
        model = DCN(cols, cols, cross_num=3, cross_parameterization="matrix", l2_reg_cross=0, **common)
    model.compile(torch.optim.Adam(model.parameters(), lr=1e-3), "binary_crossentropy", metrics=[])
    t = time.perf_counter()
    model.fit(x_train, y_train, batch_size=10_000, epochs=1, verbose=0, shuffle=True)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    p = model.predict(x_test, batch_size=10_000).ravel()
    eval_s = time.perf_counter() - t
    p64 = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    print(json.dumps({
        "library": "deepctr-torch",
        "model": args.model,
        "preprocess_s": prep,
        "train_samples_per_s": n_train / train_s,
        "train_s": train_s,
        "eval_samples_per_s": len(y_test) / eval_s,
        "test_auc": float(roc_auc_score(y_test, p64)),
        "test_logloss": float(log_loss(y_test, p64)),
        "parameters": sum(q.numel() for q in model.parameters()),
        "e2e_s": time.perf_counter() - T_START,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "features": "numerics: fill 0, log1p, DenseFeat into DNN/cross input only; categoricals: LabelEncoder on train+test, missing='-1'"
                    + ("; DCNv2 = DCN(cross_parameterization='matrix'), cross on 26x16+13=429 dims" if args.model != "DeepFM" else ""),
        "no_valid_pass": True,
    }))


if __name__ == "__main__":
    main()

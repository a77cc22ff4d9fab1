"""torchrec side of benchmarks/train_speed.py (run with its own venv's python; torchrec 1.8.0 +
fbgemm-gpu-cpu 1.8.0 on torch 2.13.0 CPU).

DeepFM / DCNv2 written on torchrec's ``FusedEmbeddingBagCollection`` (fbgemm's table-batched
embedding kernel, one table per categorical field, dim 16, with the optimizer fused into backward:
``torchrec.optim.RowWiseAdagrad`` = fbgemm EXACT_ROWWISE_ADAGRAD, lr 0.02) and a second fused
collection for the first-order term (dim 4, column 0 used: TBE needs dims that are multiples of 4); numerics embedded as value x per-field vector (as
ctrkit / FuxiCTR); the dense network (MLP 400-400-400, FM or CrossNetV2) with torch Adam 1e-3 and
grad-norm clip 10. Data: pandas ``read_csv``, categoricals ``pd.factorize`` over train+test (missing
= own code), numerics fill 0 + log1p; batches are numpy gathers -> ``KeyedJaggedTensor`` (no
background prefetch). Prints one JSON line.
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
from torch import nn  # noqa: E402

CAT = [f"C{i}" for i in range(1, 27)]
NUM = [f"I{i}" for i in range(1, 14)]
D = 16


def mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class Model(nn.Module):
    def __init__(self, kind: str, vocab: list[int]):
        super().__init__()
        from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
        from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection
        from torchrec.optim import RowWiseAdagrad

        def tables(dim: int, tag: str):
            return [EmbeddingBagConfig(name=f"{tag}_{c}", embedding_dim=dim, num_embeddings=v, feature_names=[c],
                                       pooling=PoolingType.SUM) for c, v in zip(CAT, vocab)]

        kw = dict(optimizer_type=RowWiseAdagrad, optimizer_kwargs={"lr": 0.02}, device=torch.device("cpu"))
        self.kind = kind
        self.ebc = FusedEmbeddingBagCollection(tables=tables(D, "e"), **kw)
        self.num_w = nn.Parameter(torch.randn(len(NUM), D) * 1e-4)
        F = len(CAT) + len(NUM)
        d = F * D
        if kind == "DeepFM":
            # fbgemm TBE needs dims that are multiples of 4: first-order weight = column 0 of a dim-4 table
            self.lin = FusedEmbeddingBagCollection(tables=tables(4, "w"), **kw)
            self.num_lin = nn.Parameter(torch.zeros(len(NUM)))
            self.mlp = nn.Sequential(mlp([d, 400, 400, 400]), nn.Linear(400, 1))
        else:
            self.cross_w = nn.ModuleList(nn.Linear(d, d) for _ in range(3))
            self.mlp = mlp([d, 400, 400, 400])
            self.fc = nn.Linear(d + 400, 1)

    def forward(self, kjt, dense: torch.Tensor) -> torch.Tensor:
        B = dense.shape[0]
        e = self.ebc(kjt).values().view(B, len(CAT), D)
        e = torch.cat([e, dense.unsqueeze(-1) * self.num_w], dim=1)  # (B, 39, D)
        if self.kind == "DeepFM":
            s = e.sum(1)
            fm = 0.5 * (s * s - (e * e).sum(1)).sum(1)
            lin = self.lin(kjt).values().view(B, len(CAT), 4)[:, :, 0].sum(1) + dense @ self.num_lin
            return lin + fm + self.mlp(e.flatten(1)).squeeze(-1)
        x0 = e.flatten(1)
        x = x0
        for w in self.cross_w:
            x = x0 * w(x) + x
        return self.fc(torch.cat([x, self.mlp(x0)], dim=1)).squeeze(-1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", default="DeepFM")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(2021)
    from sklearn.metrics import log_loss, roc_auc_score
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    t = time.perf_counter()
    parts = {s: pd.read_csv(args.data / f"{s}.tsv", sep="\t", dtype={c: str for c in CAT}) for s in ("train", "test")}
    n_train = len(parts["train"])
    df = pd.concat([parts["train"], parts["test"]], ignore_index=True)
    ids = np.empty((len(df), len(CAT)), dtype=np.int64)
    vocab = []
    for j, c in enumerate(CAT):
        codes, uniq = pd.factorize(df[c], use_na_sentinel=False)
        ids[:, j] = codes
        vocab.append(len(uniq))
    dense = np.log1p(df[NUM].fillna(0).to_numpy(np.float32))
    y = df["click"].to_numpy(np.float32)
    del df, parts
    prep = time.perf_counter() - t

    model = Model(args.model, vocab)
    dense_params = [p for n, p in model.named_parameters() if not (n.startswith("ebc.") or n.startswith("lin."))]
    opt = torch.optim.Adam(dense_params, lr=1e-3)
    keys = CAT

    def batch(idx):
        b = len(idx)
        kjt = KeyedJaggedTensor.from_lengths_sync(keys=keys, values=torch.from_numpy(np.ascontiguousarray(ids[idx].T).reshape(-1)),
                                                  lengths=torch.ones(len(keys) * b, dtype=torch.int32))
        return kjt, torch.from_numpy(dense[idx]), torch.from_numpy(y[idx])

    perm = np.random.default_rng(2021).permutation(n_train)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    t = time.perf_counter()
    for a in range(0, n_train, 10_000):
        kjt, x, lab = batch(np.sort(perm[a:a + 10_000]))
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(kjt, x), lab)
        loss.backward()  # embedding rows are updated here (fused row-wise Adagrad)
        nn.utils.clip_grad_norm_(dense_params, 10.0)
        opt.step()
    train_s = time.perf_counter() - t
    model.eval()
    t = time.perf_counter()
    preds = []
    with torch.no_grad():  # fbgemm's CPU TBE lookup is registered for autograd, not inference_mode
        for a in range(n_train, len(y), 10_000):
            kjt, x, _ = batch(np.arange(a, min(a + 10_000, len(y))))
            preds.append(torch.sigmoid(model(kjt, x)).numpy())
    eval_s = time.perf_counter() - t
    p = np.clip(np.concatenate(preds).astype(np.float64), 1e-7, 1 - 1e-7)
    yt = y[n_train:]
    print(json.dumps({
        "library": "torchrec",
        "model": args.model,
        "preprocess_s": prep,
        "train_samples_per_s": n_train / train_s,
        "train_s": train_s,
        "eval_samples_per_s": len(yt) / eval_s,
        "test_auc": float(roc_auc_score(yt, p)),
        "test_logloss": float(log_loss(yt, p)),
        "parameters": sum(v for v in vocab) * (D + (4 if args.model == "DeepFM" else 0)) + sum(q.numel() for q in dense_params),
        "e2e_s": time.perf_counter() - T_START,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "features": "numerics: fill 0, log1p, value x per-field vector; categoricals: pd.factorize on train+test; "
                    "embeddings: FusedEmbeddingBagCollection, fused EXACT_ROWWISE_ADAGRAD lr 0.02 (not Adam); no valid pass",
        "no_valid_pass": True,
    }))


if __name__ == "__main__":
    main()

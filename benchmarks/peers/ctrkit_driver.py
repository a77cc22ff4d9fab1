"""ctrkit side of benchmarks/train_speed.py: raw TSV -> store -> one epoch -> test metrics.

Prints one JSON line (the last line of stdout). Modes:

* ``--mode sparse`` / ``--mode dense``: ctrkit's public API, ``ctrkit.train.run.train`` with a
  config dict (generic dataset pointing at the synthetic directory), embeddings row-sparse
  (``RowSparseAdam``) or dense (``torch.optim.Adam`` over the whole table, FuxiCTR's semantics).
* ``--mode adagrad``: ``sparse`` with the embeddings on ``RowSparseAdagrad`` (one accumulator per
  row, torchrec's ``EXACT_ROWWISE_ADAGRAD``) at learning rate 0.02, the setting the torchrec side
  uses; the network stays on Adam 1e-3. The like-for-like match for torchrec's optimizer.
* ``--mode bf16``: ctrkit has no bf16 option, so this driver runs a manual loop over ctrkit's
  ``BatchLoader`` + model + ``build_optimizers`` (sparse embeddings) with the forward (and the
  evaluation) under ``torch.autocast("cpu", dtype=torch.bfloat16)``; loss in float32.
* ``--mode fp32loop``: the same manual loop without autocast (the control for ``bf16``).
* ``--profile N``: no benchmark; times the phases of N training steps (forward, backward,
  clip_gradients, each optimizer) and prints torch.profiler's top ops.
* ``--mode proto-ab --profile N``: prototype, not ctrkit's code: alternates N steps of ctrkit's
  sparse path with a variant whose embedding lookup goes through the batch's unique rows
  (``np.unique``) and so hands clip_gradients / RowSparseAdam an already coalesced gradient.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

T_START = time.perf_counter()

import ctrkit  # noqa: E402,F401  (before torch, as the CLI does: ctrkit sets PyTorch's allocator options)
import numpy as np  # noqa: E402
import torch  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def model_params(model: str) -> dict:
    if model == "DeepFM":
        return {"embedding_dim": 16, "hidden_units": [400, 400, 400], "net_dropout": 0.0, "batch_norm": False}
    if model == "DCNv2":
        return {
            "embedding_dim": 16,
            "model_structure": "parallel",
            "num_cross_layers": 3,
            "parallel_dnn_hidden_units": [400, 400, 400],
            "net_dropout": 0.0,
            "batch_norm": False,
        }
    raise SystemExit(f"unknown model {model}")


def run_config(args, mode: str) -> dict:
    return {
        "dataset": {"name": "generic", "source": str(args.data), "store": str(args.work / "store")},
        "model": {"name": args.model, "params": model_params(args.model)},
        "training": {
            "epochs": 1,
            "batch_size": 10_000,
            "eval_batch_size": 10_000,
            "learning_rate": 1e-3,
            "embedding_mode": "sparse" if mode == "adagrad" else mode,
            **({"embedding_optimizer": "adagrad", "embedding_learning_rate": 0.02} if mode == "adagrad" else {}),
            "threads": args.threads,
            "progress": False,
            "seed": 2021,
        },
        "run_dir": str(args.work / "run"),
    }


def api_run(args) -> dict:
    from ctrkit.config import RunConfig
    from ctrkit.train.run import set_threads, train

    cfg = RunConfig.from_dict(run_config(args, args.mode))
    set_threads(args.threads)
    # train() prepares the store itself (raw TSV -> encoded store), as `ctrkit train` does, and
    # reports how long that took (None from versions before it did).
    res = train(cfg)
    m = res.metrics
    return {
        "preprocess_s": m.get("prepare_seconds"),
        "train_samples_per_s": m["train_samples_per_sec"],
        "train_s": m["train_seconds"],
        "eval_samples_per_s": m["test_eval_samples_per_sec"],
        "test_auc": m["test"]["click"]["auc"],
        "test_logloss": m["test"]["click"]["logloss"],
        "parameters": m["parameters"],
    }


def _setup_manual(args):
    from ctrkit.config import RunConfig
    from ctrkit.data.loader import BatchLoader
    from ctrkit.models.registry import build_model
    from ctrkit.train.data import prepare_store
    from ctrkit.train.run import set_threads
    from ctrkit.train.trainer import build_optimizers, seed_everything

    cfg = RunConfig.from_dict(run_config(args, "sparse"))
    set_threads(args.threads)
    t = time.perf_counter()
    store = prepare_store(cfg.dataset, progress=False)
    prep = time.perf_counter() - t
    seed_everything(cfg.training.seed)
    model = build_model(args.model, store.schema, cfg.model.params)
    opts = build_optimizers(model, cfg.training)
    train = BatchLoader(store, "train", 10_000, shuffle=True, seed=cfg.training.seed, prefetch=2)
    test = BatchLoader(store, "test", 10_000, prefetch=2)
    return cfg, store, model, opts, train, test, prep


def _ctx(bf16: bool):
    import contextlib

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def manual_run(args, bf16: bool) -> dict:
    import torch.nn.functional as F

    from ctrkit.metrics import evaluate_scores
    from ctrkit.train.trainer import clip_gradients

    cfg, store, model, opts, train, test, prep = _setup_manual(args)
    if args.numeric_init == "xavier":
        # What FuxiCTR actually does: its numeric embedding is nn.Linear(1, d) and BaseModel.
        # reset_parameters() Xavier-normal initialises every nn.Linear: std sqrt(2 / (1 + d)).
        from ctrkit.nn.embedding import FeatureEmbedding

        for m in model.modules():
            if isinstance(m, FeatureEmbedding) and m.numeric_weight is not None:
                torch.nn.init.normal_(m.numeric_weight, std=(2.0 / (1 + m.dim)) ** 0.5)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    n = 0
    t = time.perf_counter()
    for b in train.epoch(0):
        for o in opts:
            o.zero_grad(set_to_none=True)
        with _ctx(bf16):
            out = model(b)
        logit = out.logits["click"].float()
        loss = F.binary_cross_entropy_with_logits(logit, b.labels["click"])
        loss.backward()
        clip_gradients(params, 10.0)
        for o in opts:
            o.step()
        n += len(b)
    train_s = time.perf_counter() - t
    model.eval()
    t = time.perf_counter()
    logits, labels = [], []
    with torch.inference_mode(), _ctx(bf16):
        for b in test.epoch(0):
            logits.append(model(b).logits["click"].float().numpy())
            labels.append(b.labels["click"].numpy())
    eval_s = time.perf_counter() - t
    m = evaluate_scores(np.concatenate(labels), np.concatenate(logits), None)
    return {
        "preprocess_s": prep,
        "train_samples_per_s": n / train_s,
        "train_s": train_s,
        "eval_samples_per_s": store.rows("test") / eval_s,
        "test_auc": m["auc"],
        "test_logloss": m["logloss"],
        "note": "manual loop (no valid pass / checkpoint)" + (", bf16 autocast fwd+eval" if bf16 else ", fp32")
        + (", numeric weights Xavier-init as FuxiCTR" if args.numeric_init == "xavier" else ""),
    }


def profile(args) -> None:
    """Per-phase times of training steps + torch.profiler's top ops."""
    import torch.nn.functional as F

    from ctrkit.train.optimizers import coalesce_rows
    from ctrkit.train.trainer import clip_gradients

    cfg, store, model, opts, train, test, prep = _setup_manual(args)
    if args.mode == "dense":
        from ctrkit.train.trainer import build_optimizers

        opts = build_optimizers(model, cfg.training.model_copy(update={"embedding_mode": "dense"}))
    params = [p for p in model.parameters() if p.requires_grad]
    batches = []
    for i, b in enumerate(train.epoch(0)):
        batches.append(b)
        if i + 1 >= args.profile:
            break
    phases: dict[str, list[float]] = {k: [] for k in ("forward", "backward", "clip", *[type(o).__name__ for o in opts])}
    model.train()

    def step(b, rec: bool):
        ts = [time.perf_counter()]
        for o in opts:
            o.zero_grad(set_to_none=True)
        out = model(b)
        loss = F.binary_cross_entropy_with_logits(out.logits["click"], b.labels["click"])
        ts.append(time.perf_counter())
        loss.backward()
        ts.append(time.perf_counter())
        clip_gradients(params, 10.0)
        ts.append(time.perf_counter())
        for o in opts:
            o.step()
            ts.append(time.perf_counter())
        if rec:
            for k, a, c in zip(phases, ts, ts[1:]):
                phases[k].append(c - a)

    for b in batches[:3]:
        step(b, False)
    for b in batches[3:]:
        step(b, True)
    tot = sum(statistics.median(v) for v in phases.values())
    print(f"phase medians over {len(batches) - 3} steps of batch 10000 ({args.model}, {args.mode} embeddings):")
    for k, v in phases.items():
        med = statistics.median(v)
        print(f"  {k:<20} {med * 1e3:8.1f} ms  {100 * med / tot:5.1f}%")
    print(f"  {'total':<20} {tot * 1e3:8.1f} ms  -> {10_000 / tot:,.0f} samples/s")
    # The sparse-gradient path in isolation.
    emb = model.embedding.fused.tables[0]
    out = model(batches[0])
    F.binary_cross_entropy_with_logits(out.logits["click"], batches[0].labels["click"]).backward()
    g = emb.weight.grad
    if g is not None and g.is_sparse:
        reps = {"coalesce()": [], "coalesce_rows": []}
        for _ in range(7):
            t = time.perf_counter()
            g.coalesce()
            reps["coalesce()"].append(time.perf_counter() - t)
            t = time.perf_counter()
            coalesce_rows(g)
            reps["coalesce_rows"].append(time.perf_counter() - t)
        u = g.coalesce()._nnz()
        print(f"  sparse grad of the fused table: nnz {g._nnz():,} -> {u:,} unique rows; "
              + "  ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in reps.items()))
    from torch.profiler import ProfilerActivity, profile as tprof

    with tprof(activities=[ProfilerActivity.CPU], record_shapes=bool(os.environ.get("CTRKIT_PROFILE_SHAPES"))) as prof:
        for b in batches[3:8]:
            step(b, False)
    shapes = bool(os.environ.get("CTRKIT_PROFILE_SHAPES"))
    print(prof.key_averages(group_by_input_shape=shapes).table(sort_by="self_cpu_time_total", row_limit=args.top))


# --------------------------------------------------------------------------- prototype
class _UniqueLookup(torch.autograd.Function):
    """rows -> weight[rows] through the batch's unique rows, so backward emits an already
    coalesced sparse gradient (sorted unique rows, duplicates summed): ctrkit's clip_gradients and
    RowSparseAdam then skip their sort (coalesce_rows returns a coalesced gradient as it is)."""

    @staticmethod
    def forward(ctx, weight, uniq, inv):
        ctx.save_for_backward(uniq, inv)
        ctx.shape = weight.shape
        return torch.nn.functional.embedding(inv, weight.index_select(0, uniq))

    @staticmethod
    def backward(ctx, g):
        uniq, inv = ctx.saved_tensors
        gu = torch.ops.aten.embedding_dense_backward(g.reshape(-1, g.shape[-1]), inv.reshape(-1), uniq.numel(), -1, False)
        return torch.sparse_coo_tensor(uniq.unsqueeze(0), gu, ctx.shape, is_coalesced=True, check_invariants=False), None, None


def np_coalesce_rows(grad: torch.Tensor):
    """ctrkit's coalesce_rows with numpy's stable argsort in place of torch.sort (prototype C)."""
    import torch.nn.functional as F

    idx = grad._indices()[0]
    vals = grad._values()
    vals = vals.reshape(vals.shape[0], -1)
    if grad.is_coalesced() or idx.numel() <= 1:
        return idx, vals
    perm = torch.from_numpy(np.argsort(idx.numpy(), kind="stable"))
    rows, counts = torch.unique_consecutive(idx.index_select(0, perm), return_counts=True)
    if rows.numel() == idx.numel():
        return rows, vals.index_select(0, perm)
    offsets = torch.cumsum(counts, 0).sub_(counts)
    return rows, F.embedding_bag(perm, vals, offsets, mode="sum")


def _unique_of(rows: torch.Tensor):
    """np.unique (numpy's sort, no torch thread pool) of a batch's rows, cached per tensor."""
    cache = _unique_of.cache
    key = (rows.data_ptr(), rows.numel())
    if key not in cache:
        cache.clear()
        u, inv = np.unique(rows.numpy().reshape(-1), return_inverse=True)
        cache[key] = (torch.from_numpy(u), torch.from_numpy(inv.reshape(rows.shape)))
    return cache[key]


_unique_of.cache = {}


def patch_unique_lookup(model) -> int:
    """Route every FusedEmbedding lookup of ``model`` through _UniqueLookup (driver-side only)."""
    from ctrkit.nn.embedding import FusedEmbedding

    n = 0
    for m in model.modules():
        if isinstance(m, FusedEmbedding) and m.uniform:
            table = m.tables[0]

            def fwd(rows, _t=table):
                u, inv = _unique_of(rows)
                return _UniqueLookup.apply(_t.weight, u, inv)

            m.forward = fwd
            m.lookup_fields = lambda rows, _f=fwd: list(_f(rows).unbind(1))
            n += 1
    return n


def proto_ab(args) -> None:
    """Alternate steps of ctrkit's sparse path (A) and the unique-lookup prototype (B) on the same
    batches, two model copies with the same init; median step time of each, and their losses."""
    import copy

    import torch.nn.functional as F

    from ctrkit.train.trainer import build_optimizers, clip_gradients

    cfg, store, model_a, opts_a, train, test, prep = _setup_manual(args)
    model_b = copy.deepcopy(model_a)
    opts_b = build_optimizers(model_b, cfg.training)
    print(f"patched {patch_unique_lookup(model_b)} FusedEmbedding tables in model B")
    model_c = copy.deepcopy(model_a)
    opts_c = build_optimizers(model_c, cfg.training)
    sides = {"A ctrkit sparse": (model_a, opts_a), "B unique-lookup proto": (model_b, opts_b),
             "C numpy-argsort coalesce": (model_c, opts_c)}
    import ctrkit.train.optimizers as ctopt

    orig_coalesce = ctopt.coalesce_rows
    times = {k: [] for k in sides}
    losses = {k: [] for k in sides}
    for i, b in enumerate(train.epoch(0)):
        if i >= args.profile:
            break
        names = list(sides)
        for k in names[i % 3:] + names[: i % 3]:
            model, opts = sides[k]
            params = [p for p in model.parameters() if p.requires_grad]
            ctopt.coalesce_rows = np_coalesce_rows if k.startswith("C") else orig_coalesce
            t = time.perf_counter()
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss = F.binary_cross_entropy_with_logits(model(b).logits["click"], b.labels["click"])
            loss.backward()
            clip_gradients(params, 10.0)
            for o in opts:
                o.step()
            times[k].append(time.perf_counter() - t)
            losses[k].append(float(loss))
    ctopt.coalesce_rows = orig_coalesce
    for k in sides:
        med = statistics.median(times[k][2:])
        print(f"  {k:<24} median step {med * 1e3:7.1f} ms -> {10_000 / med:8,.0f} samples/s; "
              f"mean loss last 10 {np.mean(losses[k][-10:]):.6f}")
    a, b_, c = (statistics.median(times[k][2:]) for k in sides)
    print(f"  speed-up B/A: {a / b_:.2f}x, C/A: {a / c:.2f}x over {len(times['A ctrkit sparse']) - 2} steps each (order rotated per batch)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", default="DeepFM")
    ap.add_argument("--mode", choices=["sparse", "dense", "adagrad", "bf16", "fp32loop", "proto-ab"], default="sparse")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--numeric-init", choices=["ctrkit", "xavier"], default="ctrkit",
                    help="manual loops: re-initialise numeric embedding vectors as FuxiCTR does (xavier)")
    args = ap.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    if args.mode == "proto-ab":
        proto_ab(args)
        return
    if args.profile:
        profile(args)
        return
    if args.mode in ("sparse", "dense", "adagrad"):
        r = api_run(args)
    else:
        r = manual_run(args, bf16=args.mode == "bf16")
    r.update(
        library=("ctrkit" if args.mode == "sparse" else f"ctrkit-{args.mode}") + ("-xavnum" if args.numeric_init == "xavier" else ""),
        model=args.model,
        mode=args.mode,
        e2e_s=time.perf_counter() - T_START,
        peak_rss_mb=peak_rss_mb(),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        features="numerics: fill 0, signed log1p, dense (value x per-field vector, FuxiCTR style); categoricals: min_count 1, missing = own token",
    )
    shutil.rmtree(args.work, ignore_errors=True)
    print(json.dumps(r))


if __name__ == "__main__":
    main()

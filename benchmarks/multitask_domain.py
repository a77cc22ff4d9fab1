"""Multi-task and multi-domain models against single-task baselines on synthetic data with a known
ground truth.

1. Funnel data (``SynthConfig(funnel=True)``: click, and conversion only after a click).
   ESMM trained over all impressions (loss on click with pCTR and on conversion with
   pCTCVR = pCTR * pCVR) against a DNN CVR model trained on *clicked* samples only (the sample
   selection bias ESMM removes). Both pCVRs are scored on the whole test set (all impressions),
   against the conversion label, and on the clicked test rows; the Bayes references come from the
   planted probabilities (``test_truth.parquet``, ``truth.json``).
2. Shifted domains (``SynthConfig(domains=3)``): STAR and AdaptDHM against one shared DNN (and a
   wider shared DNN with more non-embedding parameters than either, as a capacity control), on the
   per-domain test AUC and its average over domains (computed here from the predictions), with
   each model's parameter count (all, and outside the embedding tables) and AdaptDHM's routing
   per domain.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/multitask_domain.py --rows 200000 --epochs 4
    OMP_NUM_THREADS=1 python benchmarks/multitask_domain.py --part domains --seed 7   # another training seed

Everything (data, stores, runs) goes into a temporary directory (``--work`` to keep it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from ctrkit.data.loader import BatchLoader  # noqa: E402
from ctrkit.data.synthetic import SynthConfig, synthesize  # noqa: E402
from ctrkit.metrics import auc  # noqa: E402
from ctrkit.train.run import load_run, train  # noqa: E402


def run_model(
    work: Path, tag: str, source: Path, model: str, params: dict, epochs: int, monitor: str = "auc", seed: int = 2021
) -> Path:
    t0 = time.perf_counter()
    res = train(
        {
            "dataset": {"name": "generic", "source": str(source), "store": str(work / "stores" / tag)},
            "model": {"name": model, "params": params},
            "training": {
                "threads": 1,
                "epochs": epochs,
                "batch_size": 2048,
                "progress": False,
                "prefetch": 0,
                "monitor": monitor,
                "patience": 1,
                "seed": seed,
            },
            "run_dir": str(work / "runs" / tag),
        }
    )
    print(f"  trained {tag:<22} {model:<9} best epoch {res.metrics['best_epoch']}  {time.perf_counter() - t0:6.1f}s", flush=True)
    return res.run_dir


def parameter_counts(run_dir: Path) -> tuple[int, int]:
    """(all parameters, parameters outside nn.Embedding tables) of a finished run's model."""
    _, model, _ = load_run(run_dir)
    emb = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if id(p) not in emb)


@torch.inference_mode()
def predict(run_dir: Path, split: str = "test") -> dict[str, np.ndarray]:
    """logits per task, extras, labels and domain ids of a finished run's best model, in row order."""
    _, model, store = load_run(run_dir)
    out: dict[str, list[np.ndarray]] = {}
    for b in BatchLoader(store, split, 16384, prefetch=0).epoch(0):
        o = model(b)
        for t, v in o.logits.items():
            out.setdefault(f"logit:{t}", []).append(v.numpy())
            out.setdefault(f"label:{t}", []).append(b.labels[t].numpy())
        for k, v in o.extras.items():
            if v.dim() in (1, 2):
                out.setdefault(f"extra:{k}", []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def funnel_part(work: Path, rows: int, epochs: int, seed: int = 2021) -> None:
    print(f"== funnel data: {rows} rows (ESMM vs a CVR model trained on clicked samples only)", flush=True)
    data = work / "funnel"
    syn = synthesize(data, SynthConfig(rows=rows, funnel=True, seed=7))
    bayes = syn.truth["bayes"]["test"]
    truth = pl.read_parquet(syn.truth_paths["test"])
    test = pl.read_csv(syn.paths["test"], separator="\t", columns=["click", "conversion"])
    click = test["click"].to_numpy()
    conv = test["conversion"].to_numpy()
    clicked = click == 1

    # Clicked-only CVR data set: train/valid keep clicked rows only; test keeps every impression
    # (so the same encoders score the whole test set); the one task is conversion.
    cvr_dir = work / "cvr_clicked_only"
    cvr_dir.mkdir()
    for split in ("train", "valid", "test"):
        df = pl.read_csv(syn.paths[split], separator="\t", infer_schema_length=0)
        if split != "test":
            df = df.filter(pl.col("click") == "1")
        df.write_csv(cvr_dir / f"{split}.tsv", separator="\t")
    sch = yaml.safe_load(syn.schema_path.read_text())
    sch["tasks"] = [t for t in sch["tasks"] if t["name"] == "conversion"]
    (cvr_dir / "schema.yaml").write_text(yaml.safe_dump(sch, sort_keys=False))
    n_clicked_train = pl.read_csv(cvr_dir / "train.tsv", separator="\t", columns=["click"]).height

    tower = {"embedding_dim": 10, "tower_hidden_units": [256, 128, 64]}
    esmm = predict(run_model(work, "funnel-esmm", data, "ESMM", tower, epochs, "0.5*click:auc+0.5*conversion:auc", seed))
    dnn = predict(run_model(work, "funnel-cvr-clicked", cvr_dir, "DNN", {"embedding_dim": 10, "hidden_units": [256, 128, 64]}, epochs, "auc", seed))
    assert np.array_equal(esmm["label:conversion"], conv) and np.array_equal(dnn["label:conversion"], conv)

    p_esmm, p_dnn = esmm["extra:pcvr"], dnn["logit:conversion"]  # AUC is rank-based: logits suffice
    p_true = truth["p_cvr"].to_numpy()
    pctr = esmm["extra:pctr"]
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    print(f"  train rows {syn.rows['train']}, clicked {n_clicked_train}; test rows {len(conv)}, conversions {int(conv.sum())}")
    print(f"  {'metric (test)':<52}{'ESMM':>9}{'clicked-only':>14}{'Bayes':>9}")
    lines = [
        ("CVR AUC over all impressions (pCVR vs conversion)", auc(conv, p_esmm), auc(conv, p_dnn), auc(conv, p_true)),
        ("CVR AUC on clicked rows (pCVR vs conversion)", auc(conv[clicked], p_esmm[clicked]), auc(conv[clicked], p_dnn[clicked]),
         bayes["cvr_on_clicks"]["auc"]),
        ("CTCVR AUC all impressions (ESMM pCTR x pCVR)", auc(conv, pctr * p_esmm), auc(conv, pctr * sig(p_dnn)), bayes["conversion"]["auc"]),
        ("CTR AUC (ESMM's pCTR)", auc(click, pctr), float("nan"), bayes["click"]["auc"]),
    ]
    for name, a, b, c in lines:
        print(f"  {name:<52}{a:9.4f}{b:14.4f}{c:9.4f}")
    print("  (Bayes of the first line: the true p_cvr as the score; the true p_ctcvr scores "
          f"{bayes['conversion']['auc']:.4f} on that label)", flush=True)


def domain_part(work: Path, rows: int, epochs: int, seed: int = 2021, only: list[str] | None = None) -> None:
    print(f"== shifted domains: {rows} rows, 3 domains (STAR, AdaptDHM vs one shared DNN), training seed {seed}", flush=True)
    data = work / "domains"
    syn = synthesize(data, SynthConfig(rows=rows, domains=3, seed=11))
    bayes = syn.truth["bayes"]["test"]["domains"]
    raw_dom = pl.read_csv(syn.paths["test"], separator="\t", columns=["domain"])["domain"].to_numpy()
    doms = sorted(np.unique(raw_dom).tolist())
    common = {"embedding_dim": 10}
    models = [
        ("DNN", {**common, "hidden_units": [256, 128, 64]}),
        # Capacity control: a shared DNN with more non-embedding parameters than STAR or AdaptDHM.
        ("DNN-wide", {**common, "hidden_units": [1024, 512, 256]}),
        ("STAR", {**common, "hidden_units": [256, 128, 64], "aux_hidden_units": [64]}),
        # Shared embedding layer, dynamic routing of the embeddings into 4 learned clusters (no
        # domain prior), one star-topology FCN of the DNN's shape per cluster, combined softly.
        ("AdaptDHM", {**common, "bottom_hidden_units": [], "tower_hidden_units": [256, 128, 64], "num_clusters": 4,
                      "tower_topology": "star", "hard_routing": False}),
    ]
    results = {}
    routing = None
    for name, params in models:
        if only and name not in only:
            continue
        model = name.split("-")[0]
        run_dir = run_model(work, f"domains-{name.lower()}-s{seed}", data, model, params, epochs, "domain_mean_auc", seed)
        pred = predict(run_dir)
        y, s = pred["label:click"], pred["logit:click"]
        per = [auc(y[raw_dom == d], s[raw_dom == d]) for d in doms]
        results[name] = (per, float(np.mean(per)), auc(y, s), parameter_counts(run_dir))
        if "extra:routing" in pred:
            routing = pred["extra:routing"]
    bay = [bayes[str(d)]["click"]["auc"] for d in doms]
    share = [float(np.mean(raw_dom == d)) for d in doms]
    head = "".join(f"{f'domain {d} ({share[i]:.0%})':>16}" for i, d in enumerate(doms))
    print(f"  {'test click AUC':<12}{head}{'avg over dom':>14}{'overall':>9}{'params (net)':>24}")
    for name, (per, avg, overall, (n_all, n_net)) in results.items():
        print(f"  {name:<12}" + "".join(f"{v:16.4f}" for v in per) + f"{avg:14.4f}{overall:9.4f}"
              f"{f'{n_all:,} ({n_net:,})':>24}")
    print(f"  {'Bayes':<12}" + "".join(f"{v:16.4f}" for v in bay) + f"{float(np.mean(bay)):14.4f}"
          f"{syn.truth['bayes']['test']['click']['auc']:9.4f}", flush=True)
    if routing is not None:
        # AdaptDHM's clusters: mean routing coefficient per test domain (rows) and cluster (columns),
        # and the share of each domain's rows whose largest coefficient is that cluster.
        k = routing.shape[1]
        print("  AdaptDHM routing (test): mean coefficient / argmax share per cluster")
        for d in doms:
            r = routing[raw_dom == d]
            top = np.bincount(r.argmax(1), minlength=k) / len(r)
            print(f"    domain {d}: " + " ".join(f"{m:.2f}/{t:.2f}" for m, t in zip(r.mean(0), top)), flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--work", type=Path, default=None, help="keep data and runs here (default: a temp dir)")
    ap.add_argument("--part", choices=["funnel", "domains", "both"], default="both")
    ap.add_argument("--seed", type=int, default=2021, help="training seed (the data seeds are fixed)")
    ap.add_argument("--models", default="", help="domains part: comma-separated subset of DNN,DNN-wide,STAR,AdaptDHM")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import logging

    logging.getLogger("ctrkit").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="ctrkit-mtd-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"ctrkit multitask/multidomain benchmark: rows={args.rows} epochs={args.epochs} threads=1", flush=True)
        if args.part in ("funnel", "both"):
            funnel_part(work, args.rows, args.epochs, args.seed)
        if args.part in ("domains", "both"):
            domain_part(work, args.rows, args.epochs, args.seed, [m for m in args.models.split(",") if m])


if __name__ == "__main__":
    sys.exit(main())

"""Behaviour-sequence models on synthetic data with planted interests (issue 6).

Data: ``ctrkit.data.synthetic.synthesize(sequence=True)``: user_id, item_id, item_cat, hist_items,
hist_cats (sharing item_id's / item_cat's vocabularies) plus a few C*/I* fields. The planted click
logit has a bonus ``gamma * log1p(k)`` where k is the number of history items in the *target's
category*, so attention keyed by the target should beat mean pooling; ``truth.json`` holds the
Bayes-optimal test AUC (the ceiling).

Part 1 (``--rows 200000 --length 50``): DIN (pair [hist_items, hist_cats] / [item_id, item_cat])
vs DNN (every field embedded, both sequences mean pooled by FeatureEmbedding): test AUC and the gap
to the Bayes AUC.

Part 2 (``--long-rows 30000 --long-length 1000``): SDIM vs DIN on long histories: test AUC and the
training throughput ratio (samples/s of SDIM over DIN).

Every run: ``ctrkit.train.run.train`` with a config dict, training.threads=1, Adam 1e-3, batch
``--batch-size`` (256), at most ``--epochs`` (part 1, default 3) / ``--long-epochs`` (part 2,
default 2) epochs (BARS early stopping), embedding_dim 10. Data and runs are
cached under ``bench_out/sequence_models/``.

    OMP_NUM_THREADS=1 python benchmarks/sequence_models.py
    OMP_NUM_THREADS=1 python benchmarks/sequence_models.py --rows 50000 --long-rows 10000 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench_out" / "sequence_models"
PAIR = {"sequence_field": ["hist_items", "hist_cats"], "target_field": ["item_id", "item_cat"]}


def ensure_data(rows: int, length: int) -> Path:
    from ctrkit.data.synthetic import SynthConfig, synthesize

    d = OUT / f"synth_{rows}_L{length}"
    if not (d / "truth.json").exists():
        t = time.perf_counter()
        cfg = SynthConfig(rows=rows, sequence=True, sequence_length=length, num_numeric=2,
                          num_categorical=4, num_pairwise=2, num_triples=0, seed=2024)
        synthesize(d, cfg, overwrite=True, progress=False)
        print(f"synthesized {rows:,} rows (L={length}) into {d} in {time.perf_counter() - t:.1f}s", flush=True)
    return d


def run(data: Path, model: str, params: dict, epochs: int, tag: str, batch_size: int = 256) -> dict:
    from ctrkit.train.run import train

    run_dir = OUT / "runs" / f"{data.name}-{tag}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cfg = {
        "dataset": {"name": "generic", "source": str(data), "store": str(OUT / "stores" / data.name)},
        "model": {"name": model, "params": params},
        "training": {"epochs": epochs, "batch_size": batch_size, "eval_batch_size": 8192, "learning_rate": 1e-3,
                     "threads": 1, "progress": False, "seed": 2021, "patience": 1},
        "run_dir": str(run_dir),
    }
    t = time.perf_counter()
    m = train(cfg).metrics
    res = {
        "model": tag,
        "test_auc": m["test"]["click"]["auc"],
        "test_logloss": m["test"]["click"]["logloss"],
        "epochs": m["epochs"],
        "train_samples_per_sec": m["train_samples_per_sec"],
        "wall_s": time.perf_counter() - t,
    }
    print(json.dumps(res), flush=True)
    return res


def bayes_auc(data: Path) -> float:
    from ctrkit.data.synthetic import load_truth

    return float(load_truth(data)["bayes"]["test"]["click"]["auc"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--length", type=int, default=50)
    ap.add_argument("--long-rows", type=int, default=30_000)
    ap.add_argument("--long-length", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--long-epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--part", choices=["1", "2", "all"], default="all")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    import logging

    logging.getLogger("ctrkit").setLevel(logging.WARNING)

    if args.part in ("1", "all"):
        d = ensure_data(args.rows, args.length)
        bayes = bayes_auc(d)
        din = run(d, "DIN", PAIR, args.epochs, "DIN", args.batch_size)
        dnn = run(d, "DNN", {"hidden_units": [200, 80]}, args.epochs, "DNN-meanpool", args.batch_size)
        print(f"\n== Part 1: {args.rows:,} rows, sequence_length {args.length} ==")
        print(f"{'model':<14}{'test AUC':>10}{'gap to Bayes':>14}{'samples/s':>11}")
        for r in (din, dnn):
            print(f"{r['model']:<14}{r['test_auc']:>10.4f}{bayes - r['test_auc']:>14.4f}{r['train_samples_per_sec']:>11.0f}")
        print(f"{'Bayes':<14}{bayes:>10.4f}")
    if args.part in ("2", "all"):
        d = ensure_data(args.long_rows, args.long_length)
        bayes = bayes_auc(d)
        sdim = run(d, "SDIM", PAIR, args.long_epochs, "SDIM", args.batch_size)
        din = run(d, "DIN", PAIR, args.long_epochs, "DIN", args.batch_size)
        print(f"\n== Part 2: {args.long_rows:,} rows, sequence_length {args.long_length} ==")
        print(f"{'model':<14}{'test AUC':>10}{'gap to Bayes':>14}{'samples/s':>11}")
        for r in (sdim, din):
            print(f"{r['model']:<14}{r['test_auc']:>10.4f}{bayes - r['test_auc']:>14.4f}{r['train_samples_per_sec']:>11.0f}")
        print(f"{'Bayes':<14}{bayes:>10.4f}")
        print(f"SDIM / DIN training samples/s: {sdim['train_samples_per_sec'] / din['train_samples_per_sec']:.2f}x")


if __name__ == "__main__":
    main()

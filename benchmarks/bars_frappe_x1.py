"""Re-run BARS's Frappe_x1 table: every model with BARS's tuned settings, compared with the
published test AUC/logloss.

    python benchmarks/bars_frappe_x1.py [--source ../shared/data/frappe_x1] [--models DeepFM,DCN]
                                        [--mode sparse|dense] [--seed 2021] [--threads 2]

Settings per model come from ``src/ctrkit/configs/bars/frappe_x1/<Model>.yaml`` (read from the
BARS logs); the protocol is ctrkit's default BARS preset. Results are appended to
``bench_out/bars_frappe_x1/results.jsonl`` as each model finishes, so an interrupted run continues
where it stopped (pass --fresh to start over). Prints model, our AUC, BARS AUC, delta, logloss,
epochs and seconds. Not a test: it takes tens of minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "src" / "ctrkit" / "configs" / "bars" / "frappe_x1"


def load_configs(names: list[str] | None) -> list[dict]:
    """BARS configs by model name (or file stem), in the order given; all of them by default."""
    found = {}
    for p in sorted(CONFIGS.glob("*.yaml")):
        cfg = yaml.safe_load(p.read_text())
        cfg["_file"] = p.name
        found[cfg["model"]["name"]] = cfg
        found.setdefault(p.stem, cfg)
    if not names:
        return [found[k] for k in sorted({c["model"]["name"] for c in found.values()})]
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"no BARS config for {missing} in {CONFIGS}")
    return [found[n] for n in names]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "frappe_x1"))
    ap.add_argument("--models", default="", help="comma-separated model names (default: all)")
    ap.add_argument("--mode", choices=["sparse", "dense"], default=None,
                    help="embedding updates: row-sparse or dense Adam (default: the config's training.embedding_mode, "
                         "else sparse)")
    ap.add_argument("--seed", type=int, default=None, help="override the BARS seed (2021)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "bench_out" / "bars_frappe_x1"))
    ap.add_argument("--fresh", action="store_true", help="ignore earlier results")
    args = ap.parse_args()

    if not Path(args.source).exists():
        print(f"no Frappe_x1 data at {args.source} (give --source)", file=sys.stderr)
        return 2
    from ctrkit.train.run import train  # before torch: ctrkit sets PyTorch's allocator options

    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done: dict[str, dict] = {}
    if results_path.exists() and not args.fresh:
        for line in results_path.read_text().splitlines():
            r = json.loads(line)
            done[f"{r['model']}|{r['mode']}|{r['seed']}"] = r
    names = [n for n in args.models.split(",") if n]
    rows = []
    for cfg in load_configs(names):
        model = cfg["model"]["name"]
        seed = args.seed if args.seed is not None else cfg["training"].get("seed", 2021)
        mode = args.mode or cfg["training"].get("embedding_mode", "sparse")
        key = f"{model}|{mode}|{seed}"
        if key in done:
            rows.append(done[key])
            continue
        training = dict(cfg["training"], seed=seed, embedding_mode=mode, threads=args.threads, progress=False)
        run_dir = out / "runs" / f"{model}-{mode}-{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = {
            "dataset": {"name": "frappe_x1", "source": args.source, "store": str(out / "store")},
            "model": cfg["model"],
            "training": training,
            "run_dir": str(run_dir),
        }
        t0 = time.perf_counter()
        res = train(run)
        secs = time.perf_counter() - t0
        m = res.metrics
        task = next(iter(m["test"]))  # Frappe_x1 has one task
        bars = cfg.get("bars") or {}
        r = {
            "model": model,
            "mode": mode,
            "seed": seed,
            "auc": m["test"][task]["auc"],
            "logloss": m["test"][task]["logloss"],
            "bars_auc": bars.get("auc"),
            "bars_logloss": bars.get("logloss"),
            "epochs": m["epochs"],
            "best_epoch": m["best_epoch"],
            "seconds": secs,
            "train_samples_per_sec": m["train_samples_per_sec"],
            "threads": torch.get_num_threads(),
            "run_dir": str(run_dir),
        }
        with results_path.open("a") as fh:
            fh.write(json.dumps(r) + "\n")
        rows.append(r)
        print_row(r, flush=True)
    print()
    print(f"Frappe_x1, embeddings {args.mode or 'per config (default sparse)'}, torch threads {args.threads}, POLARS_MAX_THREADS={os.environ.get('POLARS_MAX_THREADS', 'unset')}")
    print_table(rows)
    return 0


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_row(r: dict, flush: bool = False) -> None:
    d = None if r["bars_auc"] is None else r["auc"] - r["bars_auc"]
    print(
        f"{r['model']:<10} {r['auc']:.4f}  {_fmt(r['bars_auc'], '.4f'):>6}  {_fmt(d, '+.4f'):>7}  "
        f"{r['logloss']:.4f}  {_fmt(r['bars_logloss'], '.4f'):>6}  {r['epochs']:>3}  {r['seconds']:>7.1f}  {r['train_samples_per_sec']:>8.0f}"
        f"  {r['mode']}",
        flush=flush,
    )


def print_table(rows: list[dict]) -> None:
    print(f"{'model':<10} {'AUC':<6}  {'BARS':>6}  {'delta':>7}  {'logloss':<6}  {'BARS':>6}  {'ep':>3}  {'seconds':>7}  {'train/s':>8}  embeddings")
    for r in rows:
        print_row(r)
    within = [r for r in rows if r["bars_auc"] is not None and abs(r["auc"] - r["bars_auc"]) <= 0.003]
    scored = [r for r in rows if r["bars_auc"] is not None]
    print(f"within 0.003 of BARS: {len(within)}/{len(scored)}")


if __name__ == "__main__":
    sys.exit(main())

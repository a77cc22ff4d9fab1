"""How fast BatchLoader feeds a model: rows/s over shuffled epochs (goal: >= 1,000,000 rows/s).

Uses Frappe_x1 from ``../shared/data/frappe_x1`` when present (``--data frappe``), otherwise (or
with ``--data synthetic``) a Frappe-shaped synthetic dataset: 10 categorical fields with Frappe's
cardinalities and Zipf-like value frequencies, drawn with numpy and written as CSV into a
temporary directory. The store is built once (not timed); then every combination of batch size
(4096, 10000) and prefetch (on/off) iterates ``--epochs`` shuffled epochs, and the median epoch's
rows/s is printed with the thread settings in force. Figures only: this is not a test.

    python benchmarks/loader_speed.py                 # auto: Frappe_x1 if present
    python benchmarks/loader_speed.py --data synthetic --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FRAPPE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "frappe_x1"
#: Frappe_x1's distinct values per field (user, item, daytime, weekday, isweekend, homework, cost,
#: weather, country, city).
CARDINALITIES = (957, 4082, 7, 7, 2, 3, 2, 9, 80, 233)
FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city")


def synthetic_csv(directory: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """Frappe-shaped train/valid/test CSVs (7:2:1): Zipf-ranked ids per field, ~1/3 positives."""
    rng = np.random.default_rng(seed)
    cols = {}
    for name, k in zip(FIELDS, CARDINALITIES):
        p = 1.0 / np.arange(1, k + 1) ** 1.1
        cols[name] = rng.choice(k, size=rows, p=p / p.sum())
    label = (rng.random(rows) < 1 / 3).astype(np.int8)
    n_train, n_valid = int(rows * 0.7), int(rows * 0.2)
    bounds = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, rows)}
    out = {}
    for split, (a, b) in bounds.items():
        mat = np.column_stack([label[a:b]] + [cols[f][a:b] for f in FIELDS])
        path = directory / f"{split}.csv"
        np.savetxt(path, mat, fmt="%d", delimiter=",", header="label," + ",".join(FIELDS), comments="")
        out[split] = path
    return out


def build(data: str, rows: int, workdir: Path):
    from ctrkit.data import DataSpec, build_store, source_file
    from ctrkit.data.datasets import get_dataset

    use_frappe = data == "frappe" or (data == "auto" and (FRAPPE / "valid.csv").exists())
    if use_frappe:
        spec = get_dataset("frappe_x1").data_spec(FRAPPE)
        label = "Frappe_x1 (shared copy)"
    else:
        paths = synthetic_csv(workdir, rows)
        spec = DataSpec(get_dataset("frappe_x1").schema(), {s: source_file(p) for s, p in paths.items()}, name="frappe_like")
        label = f"Frappe-shaped synthetic, {rows:,} rows"
    t = time.perf_counter()
    store = build_store(spec, workdir / "store", progress=False)
    return store, label, time.perf_counter() - t


def time_epochs(store, batch_size: int, prefetch: int, epochs: int, shuffle: bool = True) -> list[float]:
    """rows/s of each epoch (every batch fully materialised, nothing else done with it)."""
    from ctrkit.data import BatchLoader

    loader = BatchLoader(store, "train", batch_size, shuffle=shuffle, seed=2021, prefetch=prefetch)
    speeds = []
    for epoch in range(epochs + 1):  # epoch 0 warms the page cache and the allocator: not counted
        t = time.perf_counter()
        n = 0
        for batch in loader.epoch(epoch):
            n += len(batch)
        dt = time.perf_counter() - t
        if epoch:
            speeds.append(n / dt)
    return speeds


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=["auto", "frappe", "synthetic"], default="auto")
    ap.add_argument("--rows", type=int, default=500_000, help="synthetic rows (all splits)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-sizes", default="4096,10000")
    args = ap.parse_args(argv)

    import polars as pl
    import torch

    with tempfile.TemporaryDirectory(prefix="ctrkit-loader-bench-") as tmp:
        store, label, build_s = build(args.data, args.rows, Path(tmp))
        n = store.rows("train")
        print(f"data: {label}; train rows {n:,}; store built in {build_s:.2f}s")
        print(
            f"threads: torch.get_num_threads()={torch.get_num_threads()}  "
            f"POLARS_MAX_THREADS={os.environ.get('POLARS_MAX_THREADS', 'unset')} (pool {pl.thread_pool_size()})  "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}  cpus={os.cpu_count()}"
        )
        print(f"python {sys.version.split()[0]}, numpy {np.__version__}, torch {torch.__version__}, polars {pl.__version__}")
        print(f"{'batch':>6}  {'prefetch':>8}  {'shuffle':>7}  {'median rows/s':>14}  {'min':>12}  {'max':>12}")
        for bs in (int(b) for b in args.batch_sizes.split(",")):
            for prefetch in (2, 0):
                speeds = time_epochs(store, bs, prefetch, args.epochs)
                med = statistics.median(speeds)
                flag = "" if med >= 1_000_000 else "   < 1M goal"
                print(f"{bs:>6}  {'on' if prefetch else 'off':>8}  {'yes':>7}  {med:>14,.0f}  {min(speeds):>12,.0f}  {max(speeds):>12,.0f}{flag}")
        seq = time_epochs(store, 4096, 2, args.epochs, shuffle=False)
        print(f"{4096:>6}  {'on':>8}  {'no':>7}  {statistics.median(seq):>14,.0f}  {min(seq):>12,.0f}  {max(seq):>12,.0f}")


if __name__ == "__main__":
    main()

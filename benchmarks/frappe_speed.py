"""Training samples/s of ctrkit vs FuxiCTR on Frappe_x1, with BARS's tuned settings per model.

For each model (default DCN, xDeepFM, AutoInt+, FiBiNET, MaskNet, FinalNet) both sides train on
Frappe_x1 (10 categorical fields, label ``label``; 202,027 train rows) with the same BARS
hyper-parameters, read from ``src/ctrkit/configs/bars/frappe_x1/<Model>.yaml`` (embedding dim 10,
batch 4096, Adam 1e-3, the config's dropout / batch norm / regularisers, grad-norm clip 10), for
the same budget: ``--epochs`` passes of ``--steps`` steps (default: one whole epoch, 50 steps),
timed from the first step to the last, no evaluation inside the timed part, the first (cold) step
included on both sides. Two figures per run: wall-clock samples/s, and samples per CPU second of
the training thread (with one torch thread every op of a step runs on it), which load from other
jobs on a shared machine disturbs much less. Preprocessing is excluded on both sides (done once,
before any timed run).

* ``ctrkit``: the public pieces ``ctrkit.train.run.train`` is made of (prepare_store,
  build_model, BatchLoader, ``Trainer.fit``) with the BARS config, default row-sparse embeddings;
  the wall figure is the trainer's own (training steps, loader included, the end-of-epoch
  validation excluded).
* ``fuxictr``: PyPI's fuxictr 2.3.10 in its own venv (``benchmarks/peers/fuxictr_frappe.py``).
  PyPI ships no model_zoo, so the six models are thin classes over fuxictr's public layers with
  the structure of FuxiCTR's model_zoo files. Data: fuxictr's FeatureProcessor / build_dataset
  over the same CSVs and its RankDataLoader, whose batches are materialised before the clock
  starts; the figure is ``BaseModel.train_step`` over them (its loader is not counted, which can
  only favour FuxiCTR).

Every repetition of every side is its own process (whole processes, timing inside each one);
per model the sides alternate ctrkit, FuxiCTR, ctrkit, FuxiCTR, ... and the table shows the
median of the ``--reps`` repetitions per side and the ratio of medians, ctrkit / FuxiCTR.

    python benchmarks/frappe_speed.py --threads 1 --reps 2
    python benchmarks/frappe_speed.py --models DCN,MaskNet --reps 3 --steps 25
    python benchmarks/frappe_speed.py --worker ctrkit --model DCN    # one ctrkit run (internal)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bars_frappe_x1 import load_configs  # noqa: E402
from train_speed import fmt, python_of, setup_venvs  # noqa: E402

OUT = ROOT / "bench_out" / "frappe_speed"
SOURCE = ROOT.parent / "shared" / "data" / "frappe_x1"
DEFAULT_MODELS = "DCN,xDeepFM,AutoInt+,FiBiNET,MaskNet,FinalNet"


def ctrkit_run(cfg: dict, source: Path, threads: int, epochs: int, run_dir: Path, steps: int = 0) -> dict:
    training = dict(cfg["training"], epochs=epochs, embedding_mode="sparse", threads=threads, progress=False)
    if steps:
        training["max_batches_per_epoch"] = steps
    return {
        "dataset": {"name": "frappe_x1", "source": str(source), "store": str(OUT / "ctrkit_store")},
        "model": cfg["model"],
        "training": training,
        "run_dir": str(run_dir),
    }


# --------------------------------------------------------------------------- ctrkit worker
def ctrkit_worker(args) -> None:
    """One timed ctrkit run in this process (what ``ctrkit.train.run.train`` does up to the first
    validation pass: store, seed, build_model, BatchLoader, Trainer.fit); prints one JSON line."""
    import logging

    import ctrkit  # noqa: F401  (before torch, as the CLI: ctrkit sets PyTorch's allocator options)
    import torch

    from ctrkit.config import RunConfig
    from ctrkit.data.loader import BatchLoader
    from ctrkit.models.registry import build_model
    from ctrkit.train.data import prepare_store
    from ctrkit.train.run import count_parameters, set_threads
    from ctrkit.train.trainer import Trainer, seed_everything

    class TimedTrainer(Trainer):
        """Trainer.fit unchanged; stamps the main thread's CPU time from the start of fit() to
        the first evaluation (the end of the training steps)."""

        cpu = None

        def fit(self, resume: bool = False):
            self._cpu0 = time.thread_time()
            return super().fit(resume)

        def evaluate(self, loader):
            if self.cpu is None:
                self.cpu = time.thread_time() - self._cpu0
            return super().evaluate(loader)

    logging.getLogger("ctrkit").setLevel(logging.WARNING)
    run_dir = OUT / "runs" / f"{args.model.replace('+', 'Plus')}-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cfg = RunConfig.from_dict(ctrkit_run(load_configs([args.model])[0], args.source, args.threads, args.epochs, run_dir, args.steps))
    t = cfg.training
    try:
        set_threads(t.threads)
        store = prepare_store(cfg.dataset, progress=False)
        seed_everything(t.seed)
        model = build_model(cfg.model.name, store.schema, cfg.model.params)
        train = BatchLoader(store, "train", t.batch_size, shuffle=True, seed=t.seed, prefetch=t.prefetch)
        valid = BatchLoader(store, "valid", t.eval_batch_size, prefetch=t.prefetch)
        trainer = TimedTrainer(model, t, train, valid, run_dir)
        st = trainer.fit()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    losses = [h["train_loss"] for h in st.history]
    print(json.dumps({
        "side": "ctrkit", "model": args.model, "train_samples_per_s": st.train_samples / st.train_seconds,
        "train_s": st.train_seconds, "samples": st.train_samples, "cpu_s": trainer.cpu,
        "cpu_samples_per_s": st.train_samples / trainer.cpu, "mean_loss": statistics.mean(losses),
        "parameters": count_parameters(model), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
    }))


# --------------------------------------------------------------------------- orchestration
def env_for(threads: int, ctrkit: bool) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), POLARS_MAX_THREADS=str(threads),
               PYTHONWARNINGS="ignore")
    if ctrkit:
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_proc(tag: str, cmd: list[str], env: dict, timeout: float) -> dict:
    log = OUT / "logs" / f"{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f}s", "load1": load}
    log.write_text(" ".join(cmd) + "\n--- stdout\n" + p.stdout + "\n--- stderr\n" + p.stderr)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {p.returncode}: {tail[:200]} (log {log})", "load1": load}
    return dict(json.loads(lines[-1]), load1=load)


def side_cmd(side: str, model: str, cfg: dict, args) -> list[str]:
    if side == "ctrkit":
        return [sys.executable, str(Path(__file__).resolve()), "--worker", "ctrkit", "--model", model, "--source", str(args.source),
                "--threads", str(args.threads), "--epochs", str(args.epochs), "--steps", str(args.steps)]
    conf = json.dumps({"params": cfg["model"]["params"], "training": cfg["training"]})
    return [python_of("fuxictr"), str(HERE / "peers" / "fuxictr_frappe.py"), "--source", str(args.source),
            "--work", str(OUT / "fuxictr"), "--model", model, "--config", conf, "--threads", str(args.threads),
            "--epochs", str(args.epochs), "--steps", str(args.steps)]


def prepare(args) -> None:
    """Both sides' preprocessing, once, before any timed run."""
    sys.path.insert(0, str(ROOT / "src"))
    from ctrkit.config import RunConfig
    from ctrkit.train.data import prepare_store

    cfg = load_configs(["DCN"])[0]
    t = time.perf_counter()
    prepare_store(RunConfig.from_dict(ctrkit_run(cfg, args.source, args.threads, 1, OUT / "unused")).dataset, progress=False)
    print(f"ctrkit store ready ({time.perf_counter() - t:.1f}s, excluded)", flush=True)
    cmd = [python_of("fuxictr"), str(HERE / "peers" / "fuxictr_frappe.py"), "--source", str(args.source),
           "--work", str(OUT / "fuxictr"), "--prepare", "--threads", str(args.threads)]
    r = run_proc("fuxictr_prepare", cmd, env_for(args.threads, False), args.timeout)
    if "error" in r:
        raise SystemExit(f"FuxiCTR preprocessing failed: {r['error']}")
    print(f"FuxiCTR dataset ready ({r['prepare_s']:.1f}s, excluded)", flush=True)


def report(results: list[dict], models: list[str], args) -> None:
    budget = f"{args.steps} steps" if args.steps else "the whole epoch (50 steps, 202,027 rows)"
    print()
    print(f"Frappe_x1 training samples/s, batch 4096, {args.epochs} x {budget}; median of {args.reps} alternating "
          f"whole-process runs per side; torch threads {args.threads} per side, one side at a time")
    hdr = (f"{'model':<9} {'ck wall/s':>9} {'fx wall/s':>9} {'ratio':>6} {'ck cpu/s':>9} {'fx cpu/s':>9} {'ratio':>6}  "
           f"{'wall runs ck | fx':<27} {'load1':>9} {'params ck/fx':>15} {'loss ck/fx':>13} {'fx ldr s':>8}")
    print(hdr)
    print("-" * len(hdr))
    verdict = []
    for m in models:
        rows = [r for r in results if r["model"] == m]
        ck = [r for r in rows if r["side"] == "ctrkit" and "error" not in r]
        fx = [r for r in rows if r["side"] == "fuxictr" and "error" not in r]
        for r in rows:
            if "error" in r:
                print(f"{m:<9} {r['side']} rep {r['rep']}: ERROR {r['error']}")
        if not ck or not fx:
            continue

        def med(rs, k):
            return statistics.median(r[k] for r in rs)

        wall = med(ck, "train_samples_per_s") / med(fx, "train_samples_per_s")
        cpu = med(ck, "cpu_samples_per_s") / med(fx, "cpu_samples_per_s")
        verdict.append((m, wall, cpu))
        load = [r["load1"] for r in rows]
        runs = "/".join(fmt(r["train_samples_per_s"]) for r in ck) + " | " + "/".join(fmt(r["train_samples_per_s"]) for r in fx)
        print(
            f"{m:<9} {med(ck, 'train_samples_per_s'):>9,.0f} {med(fx, 'train_samples_per_s'):>9,.0f} {wall:>6.2f} "
            f"{med(ck, 'cpu_samples_per_s'):>9,.0f} {med(fx, 'cpu_samples_per_s'):>9,.0f} {cpu:>6.2f}  {runs:<27} "
            f"{min(load):>4.1f}-{max(load):<4.1f} {ck[0]['parameters']:>7,}/{fx[0]['parameters']:<7,} "
            f"{med(ck, 'mean_loss'):>6.3f}/{med(fx, 'mean_loss'):<6.3f} {med(fx, 'loader_s'):>8.1f}"
        )
    print()
    print("wall/s = samples / wall seconds of the timed steps; cpu/s = samples / CPU seconds of the training (main)")
    print("thread over the same steps (with 1 torch thread every op runs there), which the other jobs on a shared")
    print("machine disturb far less; ratio = median ctrkit / median FuxiCTR (> 1: ctrkit faster). load1 = 1-minute")
    print("load average (os.getloadavg, as in `uptime`) at the start of each run of the model.")
    print("ctrkit: build_model + Trainer.fit (ctrkit.train.run.train's path), row-sparse embeddings, its loader in the")
    print("timed steps (prefetch thread). FuxiCTR: PyPI fuxictr 2.3.10, thin model classes over its public layers (PyPI")
    print("has no model_zoo), BaseModel.train_step over RankDataLoader batches loaded before the clock ('fx ldr s' = its")
    print("loader's time for one pass, not counted). loss = mean training loss of the timed steps (FuxiCTR's includes its")
    print("L2 embedding term). params = trainable parameters of each side's model (a structural cross-check).")
    for label, i in (("wall", 1), ("cpu", 2)):
        slower = [f"{v[0]} ({v[i]:.2f})" for v in verdict if v[i] < 1.0]
        print(f"ctrkit slower than FuxiCTR ({label}): {', '.join(slower) if slower else 'none'} of {len(verdict)} models")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="steps per epoch (0: the whole epoch, 50 steps)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--setup", action="store_true", help="create / update the fuxictr venv (train_speed.py's) and exit")
    ap.add_argument("--worker", choices=["ctrkit"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        ctrkit_worker(args)
        return
    if args.setup:
        setup_venvs(["fuxictr"])
        return
    models = [m for m in args.models.split(",") if m]
    configs = {m: load_configs([m])[0] for m in models}
    import torch

    OUT.mkdir(parents=True, exist_ok=True)
    up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; cpus {os.cpu_count()}; torch {torch.__version__}; "
          f"threads per side {args.threads} (torch intra-op; OMP/MKL/POLARS_MAX_THREADS={args.threads}); uptime: {up}")
    print("FuxiCTR side: PyPI fuxictr 2.3.10; DCN/xDeepFM/AutoInt+/FiBiNET/MaskNet/FinalNet are thin classes written over "
          "its public layers as its model_zoo files are (PyPI ships no model_zoo)")
    prepare(args)
    results: list[dict] = []
    for m in models:
        for rep in range(args.reps):
            for side in ("ctrkit", "fuxictr"):
                r = run_proc(f"{side}_{m.replace('+', 'Plus')}_{rep}", side_cmd(side, m, configs[m], args),
                             env_for(args.threads, side == "ctrkit"), args.timeout)
                r.update(side=side, model=m, rep=rep)
                results.append(r)
                shown = r.get("error") or (f"{r['train_samples_per_s']:,.0f} samples/s wall ({r['train_s']:.1f}s), "
                                            f"{r['cpu_samples_per_s']:,.0f} per CPU s ({r['cpu_s']:.1f}s)")
                print(f"  {m:<9} rep {rep} {side:<8} load {r['load1']:.2f}: {shown}", flush=True)
    with open(OUT / "results.jsonl", "a") as fh:
        for r in results:
            fh.write(json.dumps(dict(r, threads=args.threads, epochs=args.epochs, steps=args.steps, time=time.strftime("%Y-%m-%d %H:%M:%S"))) + "\n")
    report(results, models, args)
    print(f"uptime at the end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()

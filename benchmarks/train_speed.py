"""Training / evaluation speed of ctrkit vs FuxiCTR, DeepCTR-Torch and torchrec on Criteo-shaped data.

DeepFM (embedding dim 16, MLP 400-400-400) and DCNv2 (parallel, 3 full-rank cross layers, MLP
400-400-400), one epoch, batch 10,000, Adam 1e-3, no dropout / BN, on a synthetic Criteo-shaped
dataset (``ctrkit.data.synthetic.synthesize``: label ``click``, I1..I13, C1..C26, TSV with header;
80/10/10 split) cached under ``bench_out/train_speed/``. Every side runs as its own process (its
own venv's python) from the raw TSV files to test metrics and prints one JSON line; this script
collects them, measures the machine's matrix-multiply ceiling for each model's layer shapes, and
prints a table with the ratios.

Sides (drivers in ``benchmarks/peers/``):

* ``ctrkit`` (``ctrkit_driver.py``): public API ``ctrkit.train.run.train`` with a config dict;
  ``sparse`` (row-sparse embeddings, the default), ``dense`` (FuxiCTR semantics), ``adagrad``
  (row-sparse embeddings on row-wise Adagrad at 0.02, torchrec's optimizer) and ``bf16``
  (manual loop, forward under ``torch.autocast("cpu", bfloat16)``; ``fp32loop`` is its control).
* ``fuxictr`` (``fuxictr_driver.py``): PyPI's fuxictr has no model_zoo, so DeepFM and DCNv2 are
  thin classes written against fuxictr's public layers the way its model_zoo files are; its own
  FeatureProcessor / build_dataset / RankDataLoader / ``model.fit``.
* ``deepctr`` (``deepctr_driver.py``): DeepCTR-Torch's shipped ``DeepFM`` and
  ``DCN(cross_parameterization="matrix")``, pandas + LabelEncoder, ``model.fit``.
* ``torchrec`` (``torchrec_driver.py``): a DeepFM / DCNv2 on torchrec's fused
  EmbeddingBagCollection (fbgemm TBE, exact row-wise Adagrad applied in backward).

Peer venvs live in ``bench_out/train_speed/venvs/<peer>``; ``--setup`` creates them, installing
``torch==2.13.0`` (the CPU wheel) first so no CUDA build is ever pulled.

    python benchmarks/train_speed.py --setup                       # once: peer venvs
    python benchmarks/train_speed.py                               # 2M rows, everything
    python benchmarks/train_speed.py --rows 200000 --models DeepFM --peers fuxictr
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "peers"
OUT = ROOT / "bench_out" / "train_speed"
VENVS = OUT / "venvs"
PEER_PACKAGES = {
    # fuxictr 2.3.10 calls polars scan_csv(dtypes=), an argument removed in polars 2
    "fuxictr": ["fuxictr", "polars<2"],
    # deepctr_torch imports requests (a version check) without declaring it
    "deepctr": ["deepctr-torch", "pandas", "scikit-learn", "requests"],
    "torchrec": ["torchrec==1.8.0", "fbgemm-gpu-cpu==1.8.0", "pandas", "scikit-learn"],
}
#: FuxiCTR's DeepFM on this machine (issue text), for when fuxictr is not run.
FUXI_REFERENCE = {"train": 18_000, "eval": 39_000}

EMB_DIM, FIELDS, HIDDEN, BATCH = 16, 39, (400, 400, 400), 10_000


# --------------------------------------------------------------------------- setup
def setup_venvs(peers: list[str]) -> None:
    for p in peers:
        v = VENVS / p
        if not (v / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(v)], check=True)
        pip = [str(v / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)  # the CPU wheel first, always pinned
        subprocess.run(pip + ["torch==2.13.0"] + PEER_PACKAGES[p], check=True)
        if p == "torchrec":
            # torchrec depends on the CUDA "fbgemm-gpu", whose files overwrite fbgemm-gpu-cpu's
            # (same package dir) and fail to load on CPU: remove it, reinstall the CPU build.
            subprocess.run([str(v / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", "fbgemm-gpu"], check=True)
            subprocess.run(pip + ["--force-reinstall", "--no-deps", "fbgemm-gpu-cpu==1.8.0"], check=True)


def ensure_data(rows: int) -> Path:
    d = OUT / f"synth_{rows}"
    if not (d / "truth.json").exists():
        from ctrkit.data.synthetic import SynthConfig, synthesize

        t = time.perf_counter()
        synthesize(d, SynthConfig(rows=rows), overwrite=True, progress=False)
        print(f"synthesized {rows:,} rows into {d} in {time.perf_counter() - t:.1f}s", flush=True)
    return d


# --------------------------------------------------------------------------- ceiling
def layer_shapes(model: str) -> list[tuple[int, int]]:
    """(in, out) of every matmul layer of the model (the FLOPs that matter)."""
    d = FIELDS * EMB_DIM
    mlp = [(d, HIDDEN[0])] + list(zip(HIDDEN, HIDDEN[1:]))
    if model == "DeepFM":
        return mlp + [(HIDDEN[-1], 1)]
    return [(d, d)] * 3 + mlp + [(d + HIDDEN[-1], 1)]


def flops_per_sample(model: str) -> dict[str, float]:
    """Forward and forward+backward FLOPs per sample (matmuls x3 for backward: dX and dW; the
    elementwise interaction / cross products counted once per pass, they are memory-bound)."""
    mm = sum(2 * i * o for i, o in layer_shapes(model))
    d = FIELDS * EMB_DIM
    inter = 4 * d if model == "DeepFM" else 3 * 2 * d  # FM sums/squares; cross x0 * (.) + x
    return {"forward": mm + inter, "train": 3 * mm + 2 * inter}


def matmul_ceiling(model: str, threads: int, reps: int = 5) -> dict[str, float]:
    """Median time of every matmul of one training step at batch 10,000 (forward ``linear``,
    backward dX = dY @ W and dW = dY^T @ X), with ``threads`` threads: the samples/s no
    implementation can beat on this machine, and the GFLOP/s it implies."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    total_fwd = total = 0.0
    flops = 0.0
    for i, o in layer_shapes(model):
        x = torch.randn(BATCH, i)
        w = torch.randn(o, i)
        b = torch.randn(o)
        g = torch.randn(BATCH, o)
        ops = {"fwd": lambda: F.linear(x, w, b), "dx": lambda: g @ w, "dw": lambda: g.t() @ x}
        for name, fn in ops.items():
            fn()
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            med = statistics.median(ts)
            total += med
            if name == "fwd":
                total_fwd += med
            flops += 2 * BATCH * i * o
    return {"train_ceiling": BATCH / total, "eval_ceiling": BATCH / total_fwd, "gflops": flops / total / 1e9}


# --------------------------------------------------------------------------- runs
def python_of(side: str) -> str:
    if side == "ctrkit":
        return sys.executable
    p = VENVS / side / "bin" / "python"
    if not p.exists():
        raise FileNotFoundError(f"{p} missing: run with --setup first")
    return str(p)


def run_side(side: str, model: str, data: Path, threads: int, mode: str | None, timeout: float) -> dict:
    driver = PEERS / f"{side}_driver.py"
    tag = f"{side}{'-' + mode if mode else ''}_{model}"
    work = OUT / "work" / tag
    cmd = [python_of(side), str(driver), "--data", str(data), "--model", model, "--threads", str(threads), "--work", str(work)]
    if mode:
        cmd += ["--mode", mode]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), POLARS_MAX_THREADS=str(threads),
               PYTHONWARNINGS="ignore")
    if side == "ctrkit":
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    log = OUT / "logs" / f"{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"  running {tag} ...", flush=True)
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        log.write_text(f"TIMEOUT after {timeout}s\n{e.stdout or ''}\n{e.stderr or ''}")
        return {"library": tag, "model": model, "error": f"timeout after {timeout:.0f}s"}
    wall = time.perf_counter() - t
    log.write_text(" ".join(cmd) + "\n--- stdout\n" + p.stdout + "\n--- stderr\n" + p.stderr)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"library": tag, "model": model, "error": f"exit {p.returncode}: {tail[:200]} (log {log})"}
    r = json.loads(lines[-1])
    r["wall_s"] = wall
    print(f"    {json.dumps(r)}", flush=True)
    return r


# --------------------------------------------------------------------------- report
def fmt(x, spec=",.0f") -> str:
    return "-" if x is None else format(x, spec)


def report(results: list[dict], ceilings: dict[str, dict], models: list[str]) -> None:
    print()
    hdr = f"{'library':<18} {'model':<7} {'train/s':>9} {'eval/s':>9} {'prep s':>7} {'e2e s':>7} {'peak MB':>8} {'test AUC':>9} " \
          f"{'tr x fuxi':>9} {'ev x fuxi':>9} {'e2e x fuxi':>10} {'tr x trec':>9} {'ev x trec':>9} {'% ceil':>7}"
    print(hdr)
    print("-" * len(hdr))
    for m in models:
        rows = [r for r in results if r.get("model") == m]
        fuxi = next((r for r in rows if r.get("library") == "fuxictr" and "error" not in r), None)
        trec = next((r for r in rows if r.get("library") == "torchrec" and "error" not in r), None)
        ceil = ceilings.get(m, {}).get("train_ceiling")
        for r in rows:
            if "error" in r:
                print(f"{r['library']:<18} {m:<7} ERROR {r['error']}")
                continue
            tr, ev = r["train_samples_per_s"], r["eval_samples_per_s"]

            def ratio(a, ref, key, inv=False):
                if ref is None:
                    return None
                return (ref[key] / a) if inv else (a / ref[key])

            print(
                f"{r['library']:<18} {m:<7} {fmt(tr):>9} {fmt(ev):>9} {fmt(r['preprocess_s'], '.1f'):>7} {fmt(r['e2e_s'], '.1f'):>7} "
                f"{fmt(r['peak_rss_mb']):>8} {fmt(r['test_auc'], '.5f'):>9} "
                f"{fmt(ratio(tr, fuxi, 'train_samples_per_s'), '.2f'):>9} {fmt(ratio(ev, fuxi, 'eval_samples_per_s'), '.2f'):>9} "
                f"{fmt(ratio(r['e2e_s'], fuxi, 'e2e_s', inv=True), '.2f'):>10} "
                f"{fmt(ratio(tr, trec, 'train_samples_per_s'), '.2f'):>9} {fmt(ratio(ev, trec, 'eval_samples_per_s'), '.2f'):>9} "
                f"{fmt(100 * tr / ceil if ceil else None, '.0f'):>7}"
            )
    print()
    print("ratios: 'x fuxi' = this / FuxiCTR (e2e: FuxiCTR seconds / these seconds); 'x trec' = this / torchrec;")
    print("'% ceil' = train samples/s as a share of the matmul ceiling for the model's layer shapes.")
    # Goals (issue) for ctrkit's default (sparse) run.
    for m in models:
        rows = {r.get("library"): r for r in results if r.get("model") == m and "error" not in r}
        ck, fx = rows.get("ctrkit"), rows.get("fuxictr")
        if not ck:
            continue
        ceil = ceilings.get(m, {}).get("train_ceiling")
        ref_tr = fx["train_samples_per_s"] if fx else (FUXI_REFERENCE["train"] if m == "DeepFM" else None)
        ref_ev = fx["eval_samples_per_s"] if fx else (FUXI_REFERENCE["eval"] if m == "DeepFM" else None)
        src = "measured" if fx else "issue's reference figures"
        print(f"goals, {m} (vs FuxiCTR {src}):")
        checks = []
        if ref_tr:
            checks.append(("train >= 2x FuxiCTR", ck["train_samples_per_s"] / ref_tr, 2.0))
        if ceil:
            checks.append(("train >= 80% of matmul ceiling", ck["train_samples_per_s"] / ceil, 0.8))
        if ref_ev:
            checks.append(("eval >= 3x FuxiCTR", ck["eval_samples_per_s"] / ref_ev, 3.0))
        if fx:
            checks.append(("e2e >= 4x faster than FuxiCTR", fx["e2e_s"] / ck["e2e_s"], 4.0))
            checks.append(("test AUC >= FuxiCTR (diff)", ck["test_auc"] - fx["test_auc"], 0.0))
        for name, v, goal in checks:
            print(f"  {name:<34} {v:8.3f}  {'met' if v >= goal else 'NOT met'}")
        bf = rows.get("ctrkit-bf16")
        ctl = rows.get("ctrkit-fp32loop") or ck
        if bf:
            print(
                f"  bf16 autocast: train {bf['train_samples_per_s'] / ctl['train_samples_per_s']:.2f}x, "
                f"eval {bf['eval_samples_per_s'] / ctl['eval_samples_per_s']:.2f}x, "
                f"test AUC {bf['test_auc'] - ctl['test_auc']:+.5f} vs {ctl['library']}"
            )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--models", default="DeepFM,DCNv2")
    ap.add_argument("--peers", default="fuxictr,deepctr,torchrec", help="comma list; empty for none")
    ap.add_argument("--ctrkit-modes", default="sparse,dense,adagrad,bf16,fp32loop")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--setup", action="store_true", help="create / update the peer venvs and exit")
    args = ap.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    models = [m for m in args.models.split(",") if m]
    modes = [m for m in args.ctrkit_modes.split(",") if m]
    if args.setup:
        setup_venvs(peers)
        return

    import torch

    data = ensure_data(args.rows)
    print(f"data: {data} ({args.rows:,} rows, Criteo-shaped synthetic; Bayes test AUC "
          f"{json.loads((data / 'truth.json').read_text())['bayes']['test']['click']['auc']:.4f})")
    print(f"threads {args.threads}; torch {torch.__version__}; cpus {os.cpu_count()}; load {os.getloadavg()[0]:.2f}")
    print("FuxiCTR DeepFM/DCNv2: thin classes over PyPI fuxictr's layers (PyPI ships no model_zoo)")
    results: list[dict] = []
    ceilings: dict[str, dict] = {}
    for m in models:
        f = flops_per_sample(m)
        # Interleave ctrkit runs with peer runs so load drift hits both; ceiling before and after.
        c0 = matmul_ceiling(m, args.threads)
        order: list[tuple[str, str | None]] = []
        ck = [("ctrkit", mode) for mode in modes]
        pr = [(p, None) for p in peers]
        while ck or pr:
            if ck:
                order.append(ck.pop(0))
            if pr:
                order.append(pr.pop(0))
        print(f"\n{m}: {f['forward'] / 1e6:.2f} MFLOP/sample forward, {f['train'] / 1e6:.2f} train; "
              f"matmul ceiling {c0['train_ceiling']:,.0f} samples/s train ({c0['gflops']:.1f} GFLOP/s)", flush=True)
        for side, mode in order:
            r = run_side(side, m, data, args.threads, mode, args.timeout)
            if side == "ctrkit":
                r.setdefault("library", "ctrkit" if mode == "sparse" else f"ctrkit-{mode}")
            results.append(r)
        c1 = matmul_ceiling(m, args.threads)
        ceilings[m] = {k: statistics.median([c0[k], c1[k]]) for k in c0}
        print(f"{m}: matmul ceiling before/after: train {c0['train_ceiling']:,.0f} / {c1['train_ceiling']:,.0f} samples/s "
              f"({c0['gflops']:.1f} / {c1['gflops']:.1f} GFLOP/s); eval (forward) {c0['eval_ceiling']:,.0f} / {c1['eval_ceiling']:,.0f}")
    with open(OUT / "results.jsonl", "a") as fh:
        for r in results:
            fh.write(json.dumps(dict(r, rows=args.rows, time=time.strftime("%Y-%m-%d %H:%M:%S"))) + "\n")
    report(results, ceilings, models)
    for r in results:
        if "features" in r:
            print(f"features, {r['library']}: {r['features']}")


if __name__ == "__main__":
    main()

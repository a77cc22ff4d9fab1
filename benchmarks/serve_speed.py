"""Serving speed: in-process latency/throughput per backend (fp32 and int8), then an HTTP load test.

    OMP_NUM_THREADS=1 python benchmarks/serve_speed.py [--rows 200000] [--models DeepFM DCNv2]
        [--threads 1 2] [--reps 5] [--load-seconds 60] [--workdir /tmp/ctrkit-serve-bench]

1. Synthesizes Criteo-shaped data (13 numeric + 26 categorical fields), trains each model for one
   epoch at Criteo-sized widths (embedding 16, MLP 400-400-400; DCNv2 adds 3 full-rank cross
   layers, parallel), exports a bundle with ``quantize="int8"`` (all fp32 backends plus
   ``onnx_int8`` and ``torchscript_int8``; the export measures the int8 cost on the run's test rows).
2. Prints what the arithmetic allows: FLOP per row of the Linear layers, and the fp32 ceiling
   measured here (the same Linear layers as plain ``torch.nn.functional.linear`` calls on
   1,000-row batches, per thread count) -> the most rows/s any fp32 backend can reach.
3. In process, per model, backend and torch/ONNX Runtime thread count, the median over ``--reps``
   repetitions of: single-record ``Predictor.predict`` latency p50/p99 (encoding included),
   model-only latency of one row, model-only rows/s on 1,000-row batches, end-to-end rows/s on
   1,000-record batches given as a list of dicts and as a Polars frame, plus encoding alone. Then
   the test AUC of each backend and its difference from fp32 (from the export). The fastest
   backend on single records and on batches are named.
4. Starts ``ctrkit serve`` (uvicorn, one worker, one thread) for the first model with its fastest
   single-record backend on 127.0.0.1 and runs ``wrk`` (Debian package ``wrk``) for
   ``--load-seconds`` with POST /predict of one record: requests/s, latency p50/p99, errors
   (non-2xx + socket errors). Checks first that a bad request still gets a 4xx naming the field.

Thread counts and the 1-minute load average are printed with every figure: on a shared machine
the load decides how far apart two runs are, so compare figures from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import torch
from torch import nn

# Criteo-sized models (the widths of the published Criteo configurations, not the zoo defaults).
MODEL_PARAMS: dict[str, dict[str, Any]] = {
    "DeepFM": {"embedding_dim": 16, "hidden_units": [400, 400, 400]},
    "DCNv2": {"embedding_dim": 16, "model_structure": "parallel", "num_cross_layers": 3,
              "parallel_dnn_hidden_units": [400, 400, 400]},
}
BACKENDS = ("eager", "torchscript", "onnx", "torchscript_int8", "onnx_int8")


def _load() -> float:
    return os.getloadavg()[0]


def _records(data: Path, n: int) -> tuple[list[dict], pl.DataFrame]:
    """Test rows as a JSON client sends them (numbers as numbers) and as a raw Polars frame."""
    df = pl.read_csv(data / "test.tsv", separator="\t", infer_schema=False).head(n).drop("click")
    recs = df.to_dicts()
    for r in recs:
        for k, v in r.items():
            if k.startswith("I") and v is not None:
                r[k] = float(v)
    return recs, df


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def _median(xs: list[float]) -> float:
    return float(np.median(np.array(xs)))


def _rate(fn: Callable[[], Any], rows: int, calls: int) -> float:
    """rows/s of ``calls`` calls of ``fn`` (after one warm-up call)."""
    fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return rows * calls / (time.perf_counter() - t0)


def _set_threads(n: int) -> None:
    torch.set_num_threads(n)


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of every nn.Linear of ``model``: what the forward pass spends its FLOPs on."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def fp32_ceiling(shapes: list[tuple[int, int]], threads: int, batch: int = 1000, reps: int = 5) -> dict[str, float]:
    """The model's Linear layers alone, as back-to-back fp32 ``F.linear`` calls on ``batch`` rows:
    GFLOP/s reached and the rows/s that bounds every fp32 backend (median of ``reps``)."""
    _set_threads(threads)
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(batch, i, generator=g) for i, _ in shapes]
    ws = [torch.randn(o, i, generator=g) for i, o in shapes]
    bs = [torch.randn(o, generator=g) for _, o in shapes]

    def run() -> None:
        for x, w, b in zip(xs, ws, bs):
            torch.nn.functional.linear(x, w, b)

    flop = 2.0 * sum(i * o for i, o in shapes)
    with torch.inference_mode():
        rates = [_rate(run, batch, 20) for _ in range(reps)]
    rows = _median(rates)
    return {"threads": threads, "rows_per_s": rows, "gflops": rows * flop / 1e9, "load": _load()}


def measure_backend(bundle: Path, backend: str, threads: int, recs: list[dict], frame: pl.DataFrame,
                    batch: int, reps: int, single: int) -> dict[str, float]:
    """Medians over ``reps`` repetitions for one backend at ``threads`` intra-op threads."""
    from ctrkit.serve import Predictor
    from ctrkit.serve.export import synthetic_batch

    _set_threads(threads)
    p = Predictor.load(bundle, backend=backend, threads=threads)
    rows = (recs * (batch // len(recs) + 1))[:batch]
    fr = pl.concat([frame] * (batch // frame.height + 1)).head(batch)
    enc = p.encode(rows)
    one = synthetic_batch(p.schema, 1, seed=1)
    for r in recs[:50]:
        p.predict([r])
    out: dict[str, list[float]] = {k: [] for k in ("single_p50_ms", "single_p99_ms", "model1_p50_ms",
                                                   "model_rows_per_s", "dicts_rows_per_s", "frame_rows_per_s")}
    for rep in range(reps):
        lat = []
        for i in range(single):
            r = recs[(rep * single + i) % len(recs)]
            t0 = time.perf_counter()
            p.predict([r])
            lat.append((time.perf_counter() - t0) * 1e3)
        out["single_p50_ms"].append(_pct(lat, 50))
        out["single_p99_ms"].append(_pct(lat, 99))
        lat = []
        for _ in range(single):
            t0 = time.perf_counter()
            p.predict_batch(one)
            lat.append((time.perf_counter() - t0) * 1e3)
        out["model1_p50_ms"].append(_pct(lat, 50))
        out["model_rows_per_s"].append(_rate(lambda: p.predict_batch(enc), batch, 10))
        out["dicts_rows_per_s"].append(_rate(lambda: p.predict(rows), batch, 10))
        out["frame_rows_per_s"].append(_rate(lambda: p.predict(fr), batch, 10))
    res = {k: _median(v) for k, v in out.items()}
    res.update(threads=threads, load=_load())
    return res


def measure_encoding(bundle: Path, recs: list[dict], frame: pl.DataFrame, batch: int, reps: int) -> dict[str, float]:
    """Encoding alone (records -> tensors), rows/s on ``batch``-record batches."""
    from ctrkit.serve import Predictor

    p = Predictor.load(bundle, backend="eager")
    rows = (recs * (batch // len(recs) + 1))[:batch]
    fr = pl.concat([frame] * (batch // frame.height + 1)).head(batch)
    return {
        "dicts_rows_per_s": _median([_rate(lambda: p.encode(rows), batch, 20) for _ in range(reps)]),
        "frame_rows_per_s": _median([_rate(lambda: p.encode(fr), batch, 20) for _ in range(reps)]),
        "one_dict_us": 1e6 / _median([_rate(lambda: p.encode([recs[0]]), 1, 2000) for _ in range(reps)]),
        "load": _load(),
    }


def _start_server(bundle: Path, backend: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = "import sys; from ctrkit.commands.serve import serve_cmd; serve_cmd(sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, str(bundle), "--host", "127.0.0.1", "--port", str(port),
                             "--backend", backend, "--threads", "1", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def load_test(bundle: Path, backend: str, rec: dict, seconds: int, connections: int, threads: int) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"error": "wrk not installed (apt-get install -y wrk)"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _start_server(bundle, backend, port)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                return {"error": "server did not start"}
            time.sleep(0.2)
        # The fast path must not have cost validation: a bad value is a 422 naming the field.
        bad = httpx.post(f"{url}/predict", json={"records": [{**rec, "I1": "abc"}]})
        validation = f"{bad.status_code} field={bad.json().get('detail', {}).get('field')}"
        body = json.dumps({"records": [rec]})
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
            fh.write(f"wrk.body = {json.dumps(body)}\n")
            fh.write(
                "done = function(summary, latency, requests)\n"
                '  io.write(string.format("RESULT %d %d %d %d %d %d %f %f\\n", summary.requests, summary.errors.status, '
                "summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, "
                "latency:percentile(50), latency:percentile(99)))\n"
                "end\n"
            )
            script = fh.name
        load_before = _load()
        res = subprocess.run([wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script, f"{url}/predict"],
                             capture_output=True, text=True)
        os.unlink(script)
        m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)", res.stdout)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", res.stdout)
        if not m or not rps:
            return {"error": f"could not parse wrk output: {res.stdout[-500:]} {res.stderr[-500:]}"}
        n, st, c, r, w, t, p50, p99 = m.groups()
        metrics = httpx.get(f"{url}/metrics").text
        return {
            "backend": httpx.get(f"{url}/health").json()["backend"],
            "server_threads": 1,
            "seconds": seconds,
            "connections": connections,
            "wrk_threads": threads,
            "requests": int(n),
            "requests_per_s": float(rps.group(1)),
            "p50_ms": float(p50) / 1e3,
            "p99_ms": float(p99) / 1e3,
            "errors": int(st) + int(c) + int(r) + int(w) + int(t),
            "server_5xx": sum(int(v) for v in re.findall(r'status="5\d\d"\} (\d+)', metrics)),
            "bad_request_answer": validation,
            "load_before": load_before,
            "load_after": _load(),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _train(model: str, data: Path, wd: Path, rows: int) -> Path:
    from ctrkit.train.run import train

    run = wd / f"run-{model}-{rows}"
    if not (run / "metrics.json").exists():
        shutil.rmtree(run, ignore_errors=True)
        train({
            "dataset": {"name": "generic", "source": str(data), "store": str(wd / f"store-{rows}")},
            "model": {"name": model, "params": MODEL_PARAMS.get(model, {})},
            "training": {"epochs": 1, "batch_size": 2048, "seed": 1, "progress": False, "threads": 1, "prefetch": 0},
            "run_dir": str(run),
        })
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000, help="synthetic rows (10%% are the held-out test rows)")
    ap.add_argument("--models", nargs="+", default=["DeepFM", "DCNv2"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="intra-op thread counts to measure")
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS))
    ap.add_argument("--reps", type=int, default=5, help="repetitions; figures are their medians")
    ap.add_argument("--single", type=int, default=300, help="single-record calls per repetition")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--load-seconds", type=int, default=60)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "ctrkit-serve-bench"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    from ctrkit.data.synthetic import SynthConfig, synthesize
    from ctrkit.models.registry import build_model
    from ctrkit.schema import FeatureSchema
    from ctrkit.serve.export import export_run

    wd = Path(args.workdir)
    data = wd / f"data-{args.rows}"
    if not (data / "truth.json").exists():
        synthesize(data, SynthConfig(rows=args.rows, seed=1), overwrite=True)
    recs, frame = _records(data, 2000)
    report: dict[str, Any] = {"rows": args.rows, "cpu_count": os.cpu_count(), "threads": args.threads}
    bundles: dict[str, Path] = {}
    fastest_single: dict[str, str] = {}
    print(f"machine: {os.cpu_count()} logical CPUs, torch {torch.__version__}; figures are medians of {args.reps} repetitions; "
          f"'load' is the 1-minute load average when the figure was taken")
    for model in args.models:
        run = _train(model, data, wd, args.rows)
        bundle = export_run(run, wd / f"bundle-{model}", quantize="int8", overwrite=True)
        bundles[model] = bundle
        meta = json.loads((bundle / "metadata.json").read_text())
        schema = FeatureSchema.from_json(bundle / "schema.json")
        shapes = linear_shapes(build_model(model, schema, meta["model_params"]))
        mflop = 2.0 * sum(i * o for i, o in shapes) / 1e6
        ceil = [fp32_ceiling(shapes, t) for t in args.threads]
        enc = measure_encoding(bundle, recs, frame, args.batch, args.reps)
        held = (meta.get("quantization") or {}).get("held_out") or {}
        res: dict[str, dict[str, Any]] = {}
        for b in args.backends:
            info = meta["backends"].get(b, {"ok": False, "error": "not in the bundle"})
            if not info["ok"]:
                res[b] = {"error": info["error"]}
                continue
            for t in args.threads:
                res[f"{b}@{t}"] = measure_backend(bundle, b, t, recs, frame, args.batch, args.reps, args.single)
        ok = {k: v for k, v in res.items() if "error" not in v}
        fs = min((k for k in ok if ok[k]["threads"] == 1), key=lambda k: ok[k]["single_p50_ms"])
        fb = max(ok, key=lambda k: ok[k]["dicts_rows_per_s"])
        fastest_single[model] = fs.split("@")[0]
        report[model] = {"params": meta["model_params"], "mflop_per_row": mflop, "fp32_ceiling": ceil, "encoding": enc,
                         "backends": res, "held_out": held, "export_default_backend": meta["default_backend"],
                         "fastest_single": fs, "fastest_batch": fb}

        print(f"\n== {model} {json.dumps(meta['model_params'])}: {len(shapes)} Linear layers, {mflop:.2f} MFLOP/row")
        for c in ceil:
            print(f"   fp32 ceiling, {c['threads']} thread(s): {c['gflops']:.0f} GFLOP/s -> {c['rows_per_s']:,.0f} rows/s "
                  f"(Linear layers alone, batch {args.batch}; load {c['load']:.2f})")
        print(f"   encoding alone, 1 thread: list of dicts {enc['dicts_rows_per_s']:,.0f} rows/s, Polars frame "
              f"{enc['frame_rows_per_s']:,.0f} rows/s, one dict {enc['one_dict_us']:.0f} us (load {enc['load']:.2f})")
        if held:
            ref = held["reference"]
            task = next(iter(held["auc"][ref]))
            print(f"   held-out accuracy ({held['rows']:,} test rows, task {task}): fp32 AUC {held['auc'][ref][task]:.5f}; " + "; ".join(
                f"{n} {held['auc'][n][task]:.5f} ({held['auc'][n][task] - held['auc'][ref][task]:+.5f}, max|dp| "
                f"{held['max_abs_diff'][n]:.1e}, mean|dp| {held['mean_abs_diff'][n]:.1e})" for n in held["auc"] if n != ref))
        print(f"   {'backend':<17}{'thr':>4}{'1-rec p50':>11}{'1-rec p99':>11}{'model 1 p50':>13}{'model rows/s':>14}"
              f"{'dicts rows/s':>14}{'frame rows/s':>14}{'load':>7}")
        for k, r in res.items():
            if "error" in r:
                print(f"   {k:<17} unavailable: {r['error']}")
                continue
            print(f"   {k.split('@')[0]:<17}{r['threads']:>4}{r['single_p50_ms']:>9.3f}ms{r['single_p99_ms']:>9.3f}ms"
                  f"{r['model1_p50_ms']:>11.3f}ms{r['model_rows_per_s']:>14,.0f}{r['dicts_rows_per_s']:>14,.0f}"
                  f"{r['frame_rows_per_s']:>14,.0f}{r['load']:>7.2f}")
        print(f"   fastest single record: {fs.replace('@', ' @ ')} thread(s); fastest batch of {args.batch} dicts: "
              f"{fb.replace('@', ' @ ')} thread(s); export's default backend: {meta['default_backend']}")
    if args.load_seconds > 0:
        model = args.models[0]
        backend = fastest_single[model]
        lt = load_test(bundles[model], backend, recs[0], args.load_seconds, args.connections, args.wrk_threads)
        report["load_test"] = {"model": model, **lt}
        print(f"\n== HTTP load test: {model} ({backend}), POST /predict of 1 record, wrk {args.load_seconds}s, "
              f"{args.connections} connections, {args.wrk_threads} wrk thread, server 1 process / 1 thread")
        if "error" in lt:
            print(f"   {lt['error']}")
        else:
            print(f"   {lt['requests_per_s']:,.0f} requests/s, p50 {lt['p50_ms']:.2f} ms, p99 {lt['p99_ms']:.2f} ms, "
                  f"{lt['requests']:,} requests, errors {lt['errors']}, server 5xx {lt['server_5xx']}; "
                  f"bad request -> {lt['bad_request_answer']}; load {lt['load_before']:.2f} -> {lt['load_after']:.2f}")
    (wd / "serve_speed.json").write_text(json.dumps(report, indent=2))
    print(f"\nreport: {wd / 'serve_speed.json'}")


if __name__ == "__main__":
    main()

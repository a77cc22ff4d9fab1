"""Serving speed: in-process latency/throughput per backend, then an HTTP load test.

    OMP_NUM_THREADS=1 python benchmarks/serve_speed.py [--rows 30000] [--models DeepFM DCNv2]
        [--load-seconds 60] [--workdir /tmp/ctrkit-serve-bench]

1. Synthesizes Criteo-shaped data (13 numeric + 26 categorical fields), trains each model for one
   epoch (paper-default widths), exports a bundle.
2. In process, per model and backend (eager / TorchScript / ONNX Runtime), one torch thread:
   single-record ``Predictor.predict`` latency p50/p99 (encoding included) and model-only latency,
   and batch throughput (records/s, batches of 1,000 records, encoding included). The fastest
   backend on single records is the one ``Predictor.load(backend="auto")`` uses (export records
   the same ranking in ``metadata.json``).
3. Starts ``ctrkit serve`` (uvicorn, one worker) for the first model on 127.0.0.1 and runs ``wrk``
   (Debian package ``wrk``) for ``--load-seconds`` with POST /predict of one record, printing
   requests/s, latency p50/p99 and the error count (non-2xx + socket errors).
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

import numpy as np
import polars as pl
import torch

BACKENDS = ("eager", "torchscript", "onnx")


def _records(data: Path, n: int) -> list[dict]:
    df = pl.read_csv(data / "test.tsv", separator="\t", infer_schema=False).head(n).drop("click")
    recs = df.to_dicts()
    for r in recs:
        for k, v in r.items():
            if k.startswith("I") and v is not None:
                r[k] = float(v)
    return recs


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def in_process(bundle: Path, recs: list[dict], single: int, batch: int, batch_reps: int) -> dict[str, dict[str, float]]:
    from ctrkit.serve import Predictor
    from ctrkit.serve.export import synthetic_batch

    out: dict[str, dict[str, float]] = {}
    meta = json.loads((bundle / "metadata.json").read_text())
    for b in BACKENDS:
        if not meta["backends"][b]["ok"]:
            out[b] = {"error": meta["backends"][b]["error"]}  # type: ignore[dict-item]
            continue
        p = Predictor.load(bundle, backend=b)
        for r in recs[:20]:
            p.predict([r])
        lat = []
        for i in range(single):
            t0 = time.perf_counter()
            p.predict([recs[i % len(recs)]])
            lat.append((time.perf_counter() - t0) * 1e3)
        one = synthetic_batch(p.schema, 1, seed=1)
        model_lat = []
        for _ in range(single):
            t0 = time.perf_counter()
            p.predict_batch(one)
            model_lat.append((time.perf_counter() - t0) * 1e3)
        rows = (recs * (batch // len(recs) + 1))[:batch]
        p.predict(rows)
        t0 = time.perf_counter()
        for _ in range(batch_reps):
            p.predict(rows)
        thr = batch * batch_reps / (time.perf_counter() - t0)
        out[b] = {
            "single_p50_ms": _pct(lat, 50),
            "single_p99_ms": _pct(lat, 99),
            "model_only_p50_ms": _pct(model_lat, 50),
            "model_only_p99_ms": _pct(model_lat, 99),
            f"batch{batch}_records_per_s": thr,
        }
    return out


def load_test(bundle: Path, rec: dict, seconds: int, connections: int, threads: int) -> dict[str, float | str]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"error": "wrk not installed (apt-get install -y wrk)"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = "import sys, torch; torch.set_num_threads(1); from ctrkit.commands.serve import serve_cmd; serve_cmd(sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, str(bundle), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
            "seconds": seconds,
            "connections": connections,
            "requests": int(n),
            "requests_per_s": float(rps.group(1)),
            "p50_ms": float(p50) / 1e3,
            "p99_ms": float(p99) / 1e3,
            "errors": int(st) + int(c) + int(r) + int(w) + int(t),
            "server_5xx": sum(int(v) for v in re.findall(r'status="5\d\d"\} (\d+)', metrics)),
            "backend": httpx.get(f"{url}/health").json()["backend"],
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=30_000)
    ap.add_argument("--models", nargs="+", default=["DeepFM", "DCNv2"])
    ap.add_argument("--single", type=int, default=500, help="single-record calls per backend")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--batch-reps", type=int, default=10)
    ap.add_argument("--load-seconds", type=int, default=60)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "ctrkit-serve-bench"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    from ctrkit.data.synthetic import SynthConfig, synthesize
    from ctrkit.serve.export import export_run
    from ctrkit.train.run import train

    wd = Path(args.workdir)
    data = wd / f"data-{args.rows}"
    if not (data / "truth.json").exists():
        synthesize(data, SynthConfig(rows=args.rows, seed=1), overwrite=True)
    recs = _records(data, 2000)
    report: dict[str, object] = {"torch_threads": torch.get_num_threads(), "rows": args.rows}
    bundles = {}
    for model in args.models:
        run = wd / f"run-{model}-{args.rows}"
        if not (run / "metrics.json").exists():
            shutil.rmtree(run, ignore_errors=True)
            train({
                "dataset": {"name": "generic", "source": str(data), "store": str(wd / f"store-{args.rows}")},
                "model": {"name": model, "params": {}},
                "training": {"epochs": 1, "batch_size": 2048, "seed": 1, "progress": False, "threads": 1, "prefetch": 0},
                "run_dir": str(run),
            })
        bundle = export_run(run, wd / f"bundle-{model}", overwrite=True)
        bundles[model] = bundle
        meta = json.loads((bundle / "metadata.json").read_text())
        res = in_process(bundle, recs, args.single, args.batch, args.batch_reps)
        fastest = min((b for b in res if "single_p50_ms" in res[b]), key=lambda b: res[b]["single_p50_ms"])
        report[model] = {"in_process": res, "fastest_single": fastest, "export_default_backend": meta["default_backend"],
                         "export_latency_ms": meta.get("latency_ms")}
        print(f"\n{model}  (export default backend: {meta['default_backend']}; fastest single-record here: {fastest})")
        print(f"{'backend':<12}{'1-rec p50':>11}{'1-rec p99':>11}{'model p50':>11}{'model p99':>11}{'rec/s @' + str(args.batch):>14}")
        for b, r in res.items():
            if "error" in r:
                print(f"{b:<12} unavailable: {r['error']}")
                continue
            print(f"{b:<12}{r['single_p50_ms']:>9.3f}ms{r['single_p99_ms']:>9.3f}ms{r['model_only_p50_ms']:>9.3f}ms"
                  f"{r['model_only_p99_ms']:>9.3f}ms{r[f'batch{args.batch}_records_per_s']:>14.0f}")
    if args.load_seconds > 0:
        model = args.models[0]
        lt = load_test(bundles[model], recs[0], args.load_seconds, args.connections, args.wrk_threads)
        report["load_test"] = {"model": model, **lt}
        print(f"\nHTTP load test: {model}, POST /predict (1 record), wrk {args.load_seconds}s, {args.connections} connections")
        print(json.dumps(lt, indent=2))
    (wd / "serve_speed.json").write_text(json.dumps(report, indent=2))
    print(f"\nreport: {wd / 'serve_speed.json'}")


if __name__ == "__main__":
    main()

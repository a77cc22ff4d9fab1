"""How fast ctrkit preprocesses raw Criteo-shaped data, against FuxiCTR's own preprocessing.

Goal (issue): at least 500,000 rows/s end to end on 2 cores, and at least 10x FuxiCTR.

The data is a Criteo-shaped synthetic dataset from :mod:`ctrkit.data.synthetic` (default
2,000,000 rows split 8:1:1 into ``train/valid/test.tsv`` with a header: ``click``, ``I1..I13``,
``C1..C26``), generated once into ``bench_out/preprocess/criteo_<rows>/`` and reused after.

Both sides do the same preprocessing: BARS' Criteo_x4 settings. Every ``I`` field (missing -> 0)
becomes the category ``floor(ln(x)^2)`` if ``x > 2`` else ``int(x)``; every field, bucketized
``I`` included, keeps the values seen at least ``--min-count`` (10) times in train; the vocabulary
is fitted on train and train/valid/test are all transformed.

* ctrkit: a fresh Python process runs ``build_store(..., force=True)`` (raw TSV -> finished
  ``.npy`` store, the content hash, the structure and value checks included) into an emptied
  directory. Its native reader takes these files; ``--polars-reader`` adds a side
  ``ctrkit-polars`` with it turned off (``CTRKIT_NATIVE_READER=0``): the same store, by Polars.
* FuxiCTR: a fresh process in its own virtual environment (``bench_out/venvs/fuxictr``, created
  once by this script: ``torch==2.13.0`` first, then ``fuxictr``) runs
  ``benchmarks/peers/fuxictr_preprocess.py``, i.e. ``FeatureProcessor`` + ``build_dataset`` as
  FuxiCTR's run scripts do (raw CSV -> ``train/valid/test.parquet`` and its feature map).

Every run is a whole process, timed from start to exit (wall clock); the sides alternate
(ctrkit, FuxiCTR, ctrkit, ...) and the table shows medians, with the CPU time (all threads) and
the 1-minute load average around the runs: on a shared machine the wall clock says as much about
the other jobs as about the preprocessing. Peak memory is given twice: the peak
RSS of the largest single process (``os.wait4``'s ``ru_maxrss``) and the peak summed PSS of the
run's whole process tree (sampled from ``/proc`` 4 times a second: FuxiCTR starts Ray workers).
Figures only: this is not a test.

    python benchmarks/preprocess_speed.py                      # 2M rows, 3 runs per side
    python benchmarks/preprocess_speed.py --polars-reader      # ... and ctrkit's Polars reader
    python benchmarks/preprocess_speed.py --rows 200000 --runs 1 --skip-peer
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PEER_DRIVER = HERE / "peers" / "fuxictr_preprocess.py"
#: What the FuxiCTR environment gets after ``torch==2.13.0``. FuxiCTR 2.3.10 (the newest on PyPI
#: when this was written) calls ``pl.scan_csv(dtypes=...)``, an argument Polars 2.0 removed.
FUXICTR_REQS = ("fuxictr==2.3.10", "polars<2")
TORCH_PIN = "torch==2.13.0"


# ============================================================================ the ctrkit worker
def criteo_schema(label: str, min_count: int, num_numeric: int = 13, num_categorical: int = 26):
    """BARS Criteo_x4's schema (see ``ctrkit.data.datasets.criteo_x4``) with the label column
    ``label``."""
    from ctrkit.data.datasets._base import categorical, make_schema

    numeric = [
        {"name": f"I{i}", "kind": "numeric", "fill_value": 0.0, "bucketize": {"method": "criteo_log2"},
         "min_count": min_count}
        for i in range(1, num_numeric + 1)
    ]  # fmt: skip
    cats = [dict(f, fill_value="") for f in categorical([f"C{i}" for i in range(1, num_categorical + 1)], min_count=min_count)]
    return make_schema(numeric + cats, label=label)


def ctrkit_worker(data_dir: Path, store_dir: Path, min_count: int) -> None:
    """Runs in its own process: raw files -> finished store; prints one JSON line."""
    from ctrkit.data import DataSpec, build_store, source_file

    spec = DataSpec(
        criteo_schema("click", min_count),
        {s: source_file(data_dir / f"{s}.tsv") for s in ("train", "valid", "test")},
        name="criteo_like",
    )
    store = build_store(spec, store_dir, force=True, progress=False)
    print(json.dumps({"rows": {s: store.rows(s) for s in store.splits}, "reader": store.manifest.get("reader")}), flush=True)


# ============================================================================ measuring a process
@dataclass
class Run:
    side: str
    wall: float
    rows: int
    max_rss_mb: float  # largest single process (ru_maxrss of the child and its waited-for children)
    tree_pss_mb: float  # peak of the summed PSS of the whole process tree, sampled
    cpu_s: float  # user + sys of the child and its waited-for children
    info: dict = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average when the run started and ended

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            s = fh.read()
    except OSError:
        return None
    rest = s[s.rindex(b")") + 2 :].split()
    return int(rest[1]), int(rest[3])


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree_pss_kb(root: int) -> int:
    """Summed PSS of ``root``, its descendants and everything else in its session."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st is not None:
                procs[int(name)] = st
    root_sid = procs.get(root, (0, -1))[1]
    members, changed = {root}, True
    members |= {p for p, (_, sid) in procs.items() if sid == root_sid}
    while changed:
        changed = False
        for p, (ppid, _) in procs.items():
            if p not in members and ppid in members:
                members.add(p)
                changed = True
    return sum(_pss_kb(p) for p in members)


def run_process(side: str, cmd: list[str], env: dict[str, str], log: Path) -> Run:
    peak = [0]
    done = threading.Event()
    load_start = os.getloadavg()[0]
    with open(log, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True)

        def sample() -> None:
            while not done.wait(0.25):
                peak[0] = max(peak[0], _tree_pss_kb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{side} run failed (exit {proc.returncode}); end of {log}:\n{tail}")
    info = json.loads(out.decode().strip().splitlines()[-1])
    rows = sum(info["rows"].values())
    load = (load_start, os.getloadavg()[0])
    return Run(side, wall, rows, ru.ru_maxrss / 1024, peak[0] / 1024, ru.ru_utime + ru.ru_stime, info, load)


# ============================================================================ setup
def ensure_data(out: Path, rows: int) -> Path:
    from ctrkit.data.synthetic import SynthConfig, synthesize

    d = out / f"criteo_{rows}"
    if not (d / "truth.json").exists():  # synthesize() renames a complete directory into place
        print(f"generating {rows:,} Criteo-shaped rows into {d} ...", flush=True)
        t = time.perf_counter()
        synthesize(d, SynthConfig(rows=rows), overwrite=True, progress=False)
        print(f"  done in {time.perf_counter() - t:.1f}s", flush=True)
    return d


def ensure_fuxictr_venv(venv: Path) -> Path:
    """The FuxiCTR environment (created once): torch pinned first, then FuxiCTR."""
    py = venv / "bin" / "python"
    stamp = venv / ".ready"
    want = " ".join((TORCH_PIN, *FUXICTR_REQS))
    if stamp.exists() and stamp.read_text().strip() == want and py.exists():
        return py
    print(f"creating the FuxiCTR environment {venv} ({want}) ...", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "--quiet"]
    # torch first and pinned (the CPU wheel): with it present pip keeps it for fuxictr.
    subprocess.run([*pip, TORCH_PIN], check=True)
    subprocess.run([*pip, TORCH_PIN, *FUXICTR_REQS], check=True)
    check = "import torch, fuxictr.preprocess, fuxictr.datasets.criteo; print(torch.__version__)"
    tv = subprocess.run([str(py), "-c", check], check=True, capture_output=True, text=True).stdout.strip()
    if not tv.startswith("2.13.0"):
        raise SystemExit(f"the FuxiCTR environment got torch {tv}, not 2.13.0")
    stamp.write_text(want + "\n")
    return py


def pkg_versions(py: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        f"for n in {names!r}:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'absent'\n"
        "print(json.dumps(out))"
    )
    return json.loads(subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True).stdout)


def vocab_check(store_dir: Path, fuxi_dir: Path) -> str:
    """Compare the fitted vocabularies token by token: the same settings must give the same ones.
    FuxiCTR leaves each field's fill value (0 for I, '' for C) out of its vocabulary (its
    Tokenizer maps the ``fill_na`` value to OOV); ctrkit gives it an id. Nothing else may differ."""
    try:
        theirs = json.loads((fuxi_dir / "feature_vocab.json").read_text())
        ours = json.loads((store_dir / "encoders.json").read_text())["vocabs"]
    except (OSError, KeyError, ValueError) as e:
        return f"vocabulary check skipped ({e})"
    same, only_fill, other = 0, 0, []
    for name, vocab in ours.items():
        a = {str(k) for k in theirs.get(name, {})} - {"__PAD__", "__OOV__"}
        b = set(vocab["values"])
        fill = "0" if name.startswith("I") else ""
        if a == b:
            same += 1
        elif a <= b and b - a == {fill}:
            only_fill += 1
        else:
            other.append(name)
    return (
        f"vocabularies, ctrkit vs FuxiCTR, {len(ours)} fields: {same} identical, {only_fill} identical but for "
        f"the fill value (0 / '') that FuxiCTR maps to OOV" + (f"; DIFFERENT: {other}" if other else "")
    )


# ============================================================================ main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000, help="rows of the synthetic dataset (all splits)")
    ap.add_argument("--runs", type=int, default=3, help="runs per side (alternating)")
    ap.add_argument("--skip-peer", action="store_true", help="ctrkit only: no FuxiCTR environment or runs")
    ap.add_argument("--polars-reader", action="store_true",
                    help="also time ctrkit with its native reader off (CTRKIT_NATIVE_READER=0): the Polars reader")  # fmt: skip
    ap.add_argument("--min-count", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench_out" / "preprocess", help="data and output cache")
    ap.add_argument("--venv", type=Path, default=ROOT / "bench_out" / "venvs" / "fuxictr")
    ap.add_argument("--_worker", nargs=2, metavar=("DATA_DIR", "STORE_DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        ctrkit_worker(Path(args._worker[0]), Path(args._worker[1]), args.min_count)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    data = ensure_data(args.out, args.rows)
    fuxi_py = None if args.skip_peer else ensure_fuxictr_venv(args.venv)

    env = dict(os.environ)
    env["POLARS_MAX_THREADS"] = "2"  # both sides (FuxiCTR's Polars would take the 2 cores anyway)
    env.pop("VIRTUAL_ENV", None)
    store_dir = args.out / "ctrkit_store"
    fuxi_root = args.out / "fuxictr_out"
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    ours_cmd = [sys.executable, str(Path(__file__).resolve()), "--min-count", str(args.min_count),
                "--_worker", str(data), str(store_dir)]  # fmt: skip
    fuxi_cmd = [str(fuxi_py), str(PEER_DRIVER), str(data), str(fuxi_root), "--label", "click",
                "--min-count", str(args.min_count), "--sep", "\t", "--ext", "tsv"] if fuxi_py else []  # fmt: skip

    runs: dict[str, list[Run]] = {"ctrkit": [], "ctrkit-polars": [], "FuxiCTR": []}
    sides = [("ctrkit", env)]
    if args.polars_reader:
        sides.append(("ctrkit-polars", {**env, "CTRKIT_NATIVE_READER": "0"}))
    for i in range(args.runs):
        for side, side_env in sides:
            shutil.rmtree(store_dir, ignore_errors=True)  # a cold build: no cached content hash either
            r = run_process(side, ours_cmd, side_env, logs / f"{side}-{i}.log")
            runs[side].append(r)
            print(f"run {i + 1}/{args.runs} {side:<13}: {r.wall:7.2f}s  {r.rows_per_s:>10,.0f} rows/s  "
                  f"max RSS {r.max_rss_mb:,.0f} MB  tree PSS {r.tree_pss_mb:,.0f} MB  cpu {r.cpu_s:.1f}s  "
                  f"load {r.load[0]:.2f}->{r.load[1]:.2f}  reader {r.info.get('reader')}", flush=True)  # fmt: skip
        if fuxi_py:
            shutil.rmtree(fuxi_root, ignore_errors=True)
            r = run_process("FuxiCTR", fuxi_cmd, env, logs / f"fuxictr-{i}.log")
            runs["FuxiCTR"].append(r)
            print(f"run {i + 1}/{args.runs} {'FuxiCTR':<13}: {r.wall:7.2f}s  {r.rows_per_s:>10,.0f} rows/s  "
                  f"max RSS {r.max_rss_mb:,.0f} MB  tree PSS {r.tree_pss_mb:,.0f} MB  cpu {r.cpu_s:.1f}s  "
                  f"load {r.load[0]:.2f}->{r.load[1]:.2f}", flush=True)  # fmt: skip

    import numpy as np
    import polars as pl

    print()
    sizes = {s: (data / f"{s}.tsv").stat().st_size for s in ("train", "valid", "test")}
    print(f"data: {data} ({args.rows:,} rows, {sum(sizes.values()) / 1e6:,.0f} MB of TSV; "
          f"train/valid/test {runs['ctrkit'][0].info['rows']})")  # fmt: skip
    print(f"preprocessing on both sides: I1..I13 bucketized floor(ln(x)^2) if x > 2 else int(x) (missing -> 0), "
          f"C1..C26 as they are (missing -> ''), vocabularies fitted on train with min_count {args.min_count} "
          f"(BARS Criteo_x4_001); ctrkit writes .npy, FuxiCTR parquet")  # fmt: skip
    print(f"threads: POLARS_MAX_THREADS={env.get('POLARS_MAX_THREADS')} (both sides)  "
          f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'unset')}  cpus={os.cpu_count()}  "
          f"load average at the end {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"ctrkit side: python {sys.version.split()[0]}, polars {pl.__version__}, numpy {np.__version__}")
    if fuxi_py:
        v = pkg_versions(fuxi_py, ["fuxictr", "polars", "pandas", "ray", "numpy", "torch"])
        print("FuxiCTR side: " + ", ".join(f"{k} {x}" for k, x in v.items()))
        print(vocab_check(store_dir, fuxi_root / "criteo_like"))
    print()
    # 'rows/cpu-s' is rows per second of CPU time (all threads): on a loaded machine it shows what
    # the wall clock cannot; the goals are wall-clock figures.
    print(f"{'side':<13} {'runs':>4} {'median s':>9} {'rows/s':>11} {'max RSS MB':>11} {'tree PSS MB':>12} "
          f"{'cpu s':>7} {'rows/cpu-s':>11} {'load':>11}")  # fmt: skip
    med = {}
    for side, rs in runs.items():
        if not rs:
            continue
        w = statistics.median(r.wall for r in rs)
        cpu = statistics.median(r.cpu_s for r in rs)
        med[side] = w
        load = f"{min(r.load[0] for r in rs):.1f}-{max(max(r.load) for r in rs):.1f}"
        print(f"{side:<13} {len(rs):>4} {w:>9.2f} {rs[0].rows / w:>11,.0f} "
              f"{max(r.max_rss_mb for r in rs):>11,.0f} {max(r.tree_pss_mb for r in rs):>12,.0f} "
              f"{cpu:>7.1f} {rs[0].rows / cpu:>11,.0f} {load:>11}")  # fmt: skip
    ours = runs["ctrkit"][0].rows / med["ctrkit"]
    verdict = [f"ctrkit {ours:,.0f} rows/s ({'meets' if ours >= 500_000 else 'BELOW'} the 500,000 goal)"]
    if "ctrkit-polars" in med:
        verdict.append(f"Polars reader/native reader time {med['ctrkit-polars'] / med['ctrkit']:.2f}x")
    if "FuxiCTR" in med:
        ratios = [f.wall / c.wall for c, f in zip(runs["ctrkit"], runs["FuxiCTR"])]
        ratio = med["FuxiCTR"] / med["ctrkit"]
        verdict.append(
            f"FuxiCTR/ctrkit time {ratio:.1f}x (per pair {', '.join(f'{x:.1f}' for x in ratios)}; "
            f"{'meets' if ratio >= 10 else 'BELOW'} the 10x goal)"
        )
    print("; ".join(verdict))


if __name__ == "__main__":
    main()

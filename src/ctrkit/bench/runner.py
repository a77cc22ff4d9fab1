"""Run a suite: worker processes with explicit thread budgets, results into a database, resumable.

Every run executes in a worker process (``multiprocessing`` *spawn*). Before torch is imported
there, the worker sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``POLARS_MAX_THREADS`` to its
budget and the run's ``training.threads`` is set to the same value, so ``workers x threads`` never
exceeds the cores (checked). Workers exit on their own when the runner dies (they watch their parent).

After training, each run's costs are measured in its worker: peak resident memory of the
process during the run, single-row inference latency and batch inference throughput of the trained
model (:func:`measure_inference`, about a second or two per run).

Only the runner writes the database, once per ended run, in one transaction (see
:mod:`ctrkit.bench.db`). Each invocation also appends its start, heartbeats and end to
``sessions.jsonl`` in the benchmark directory, so a suite run in several sittings still has a wall
time (:mod:`ctrkit.bench.sessions`). On ``resume`` runs recorded as finished are skipped; any other run is
(re)started: from its checkpoint when its run directory has one, or recorded from its
``metrics.json`` directly when it had finished training but the runner died before recording it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ctrkit import __version__
from ctrkit.bench.db import ResultsDB, flatten_history, flatten_metrics, safe_url
from ctrkit.bench.sessions import SessionLog, TimeLeft
from ctrkit.bench.suite import RunSpec, Suite
from ctrkit.errors import ConfigError, CtrkitError
from ctrkit.nn import field_attention
from ctrkit.train import allocator, optimizers

log = logging.getLogger("ctrkit.bench")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def environment() -> dict[str, Any]:
    """What produced the numbers: versions, commit, CPU (recorded with every run)."""
    libs = {}
    for name in ("torch", "polars", "numpy"):
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libs[name] = None
    # Which attention kernels ran (they change speed, and float rounding, not the model).
    libs["ctrkit attention kernels"] = field_attention.kernels()
    libs["ctrkit row-sparse update"] = "c" if optimizers.native_available() else None
    # Whether train() keeps freed memory for reuse (speed only; see ctrkit.train.allocator).
    libs["ctrkit malloc reuse"] = "on" if allocator.reuse_wanted() else None
    commit = None
    try:
        r = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
        if r.returncode == 0:
            commit = r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"ctrkit_version": __version__, "git_commit": commit, "library_versions": libs, "cpu_model": cpu}


def primary_task(metrics: dict[str, Any], split: str = "valid") -> str | None:
    tasks = list((metrics.get(split) or {}).keys())
    if not tasks:
        return None
    return "click" if "click" in tasks else sorted(tasks)[0]


# ------------------------------------------------------------------ worker side
def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)  # the runner died: an orphan must not keep writing into run directories


def _init_worker(threads: int, parent: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS"):
        os.environ[var] = str(threads)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # Runs log to their train.log; a worker's console copy would only garble the progress bar.
    logging.getLogger("ctrkit").addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115


def reset_peak_rss() -> bool:
    """Start a new peak-memory window for this process (Linux: ``/proc/self/clear_refs``), so a
    worker that runs several runs reports each run's own peak. False where unsupported (the
    reported peak is then the process's lifetime peak)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process since :func:`reset_peak_rss`, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    except (ImportError, OSError):
        return None


def measure_inference(
    run_dir: str | Path, *, single_calls: int = 300, batch_rows: int = 1000, budget_seconds: float = 1.0
) -> dict[str, float | None]:
    """Latency of the trained model (``best_model.pt``) on one row and throughput on a batch.

    ``infer_single_ms``: median over up to ``single_calls`` forward passes of one row (at least 30,
    fewer than ``single_calls`` only when they take longer than ``budget_seconds``);
    ``infer_batch_rows_per_sec``: ``batch_rows`` / median time of a forward pass over that many rows
    (up to 20 passes, at least 3, within another ``budget_seconds``). Rows come from the run's
    test split (else valid) and are already encoded: this is the model's cost, without parsing
    raw rows. Threads: whatever this process runs torch with (the run's budget in a worker).
    """
    import statistics

    import torch

    from ctrkit.data.loader import BatchLoader
    from ctrkit.train.run import load_run

    _, model, store = load_run(run_dir)
    split = "test" if "test" in store.splits else "valid"
    one = next(iter(BatchLoader(store, split, 1, prefetch=0)))
    big = next(iter(BatchLoader(store, split, min(batch_rows, store.rows(split)), prefetch=0)))

    def timed(batch: Any, max_calls: int, min_calls: int) -> float:
        for _ in range(3):  # warm-up: the first calls allocate and pick kernels
            model(batch)
        times: list[float] = []
        deadline = time.perf_counter() + budget_seconds
        while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    with torch.inference_mode():
        single = timed(one, single_calls, 30)
        batch = timed(big, 20, 3)
    return {"infer_single_ms": single * 1000.0, "infer_batch_rows_per_sec": len(big) / batch if batch > 0 else None}


def run_data(run_dir: str | Path) -> dict[str, Any]:
    """What data a trained run saw: ``data_fingerprint`` (its store's) and ``data_checksums``
    (split -> sha256 of the source file), from the store manifest its ``store.json`` points at;
    empty when the run never got as far as its store."""
    try:
        store = json.loads((Path(run_dir) / "store.json").read_text())["store"]
        manifest = json.loads((Path(store) / "manifest.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    sources = manifest.get("sources") or {}
    return {
        "data_fingerprint": manifest.get("fingerprint"),
        "data_checksums": {split: info.get("sha256") for split, info in sources.items() if isinstance(info, dict)},
    }


def run_evaluations(run_dir: str | Path) -> list[tuple[int, str, str, str, float]]:
    """The per-evaluation metrics of a run from its ``history.json`` (empty when it has none)."""
    try:
        history = json.loads((Path(run_dir) / "history.json").read_text())
    except (OSError, ValueError):
        return []
    return flatten_history(history) if isinstance(history, list) else []


def execute_run(
    config: dict[str, Any],
    run_dir: str,
    threads: int,
    on_evaluation: Callable[[int, dict[str, dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Train one run in this process (a worker); returns its row fields and metrics rows.

    A training error is returned as a ``failed`` row; an exception raised by ``on_evaluation``
    (called after every validation pass, e.g. a tuner's pruning) propagates instead.
    """
    from ctrkit.config import RunConfig
    from ctrkit.train.checkpoint import atomic_write_json, atomic_write_text
    from ctrkit.train.run import train

    # Memory the last run freed but kept (see ctrkit.train.allocator) goes back first, so this
    # run's peak is its own.
    allocator.release_free_memory()
    reset_peak_rss()
    trained_here = True
    raised: list[BaseException] = []

    def hook(epoch: int, metrics: dict[str, dict[str, Any]]) -> None:
        try:
            on_evaluation(epoch, metrics)  # type: ignore[misc]
        except BaseException as e:
            raised.append(e)
            raise

    callback = hook if on_evaluation is not None else None
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    marker = d / "bench.json"
    started = json.loads(marker.read_text())["started_at"] if marker.exists() else _now()
    if not marker.exists():
        atomic_write_json({"started_at": started}, marker)
    out: dict[str, Any] = {"started_at": started, "threads": threads}
    try:
        if (d / "metrics.json").exists() and (d / "best_model.pt").exists():
            metrics = json.loads((d / "metrics.json").read_text())  # trained; not yet recorded
            trained_here = False
        elif (d / "config.yaml").exists():
            cfg = RunConfig.from_yaml(d / "config.yaml")
            cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"threads": threads})})
            atomic_write_text(cfg.to_yaml(), d / "config.yaml")
            metrics = train(None, resume=d, on_evaluation=callback).metrics  # type: ignore[arg-type]
        else:
            cfg = json.loads(json.dumps(config))
            cfg.setdefault("training", {}).update(threads=threads, progress=False)
            cfg["run_dir"] = str(d)
            metrics = train(cfg, on_evaluation=callback).metrics
    except Exception as e:  # a failed run is recorded as such; the suite goes on
        if raised and e is raised[0]:
            raise
        out.update(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}", finished_at=_now(), metrics=[])
        out["peak_rss_mb"] = peak_rss_mb()
        out.update(run_data(d), evaluations=run_evaluations(d))
        return out
    best = d / "best_model.pt"
    # Peak memory of training (read before the inference measurement, which adds little); a run
    # only recorded here from its metrics.json was trained by another process: no peak.
    out["peak_rss_mb"] = peak_rss_mb() if trained_here else None
    try:
        out.update(measure_inference(d))
    except Exception as e:  # a cost that cannot be measured must not fail a trained run
        log.warning("inference cost of %s not measured: %s: %s", d, type(e).__name__, e)
    out.update(
        status="finished",
        finished_at=_now(),
        threads=metrics.get("threads", threads),
        parameters=metrics.get("parameters"),
        model_bytes=best.stat().st_size if best.exists() else None,
        train_seconds=metrics.get("train_seconds"),
        train_samples_per_sec=metrics.get("train_samples_per_sec"),
        eval_samples_per_sec=metrics.get("test_eval_samples_per_sec", metrics.get("valid_eval_samples_per_sec")),
        metrics=flatten_metrics(metrics),
        evaluations=run_evaluations(d),
        **run_data(d),
    )
    task = primary_task(metrics)
    out["valid_auc"] = metrics["valid"][task].get("auc") if task else None
    return out


# ------------------------------------------------------------------ runner side
def _progress_note(best: tuple[float, str] | None, failed: int, left: TimeLeft) -> str:
    """The progress bar's postfix: current best, failures, estimated training time left."""
    parts = []
    if best is not None:
        parts.append(f"best valid AUC {best[0]:.5f} ({best[1]})")
    if failed:
        parts.append(f"{failed} failed")
    eta = left.describe()
    if eta:
        parts.append(eta)
    return ", ".join(parts)


@dataclass
class BenchSummary:
    total: int
    skipped: int
    finished: int
    failed: int
    db: str
    deferred: int = 0  # runs not started because of stop_after (run them with resume)


def prepare_datasets(suite: Suite, *, progress: bool = False) -> None:
    """Create missing synthetic datasets and build every store once, before any worker starts."""
    from ctrkit.config import DatasetConfig
    from ctrkit.train.data import prepare_store

    for ds in suite.datasets:
        if ds.synthetic is not None:
            src = Path(ds.section["source"])
            if not (src / "truth.json").exists():
                from ctrkit.data.synthetic import SynthConfig, synthesize

                try:
                    synth_cfg = SynthConfig(**ds.synthetic)
                except (TypeError, ConfigError) as e:
                    raise ConfigError(str(e), file=suite.source, key=f"datasets.{ds.label}.synthetic") from None
                log.info("synthesizing %s into %s", ds.label, src)
                synthesize(src, synth_cfg, overwrite=src.exists(), progress=progress)
        prepare_store(DatasetConfig.model_validate(ds.section), progress=progress)


def thread_budget(workers: int, threads_per_worker: int | None) -> int:
    """Threads per worker: the given number, or the cores shared evenly; ``workers x threads``
    may not exceed the cores (oversubscribed cores make every number measured meaningless)."""
    cores = os.cpu_count() or 1
    if workers < 1:
        raise ConfigError("--workers must be >= 1")
    if threads_per_worker is not None and threads_per_worker < 1:
        raise ConfigError("--threads-per-worker must be >= 1")
    threads = threads_per_worker or max(1, cores // workers)
    if workers * threads > cores:
        raise ConfigError(f"{workers} workers x {threads} threads exceeds the {cores} cores of this machine")
    return threads


def db_label(database: ResultsDB) -> str:
    """How to name a results database in messages and ``suite.json``: its file, or its URL
    without the password."""
    return str(database.path) if database.path is not None else safe_url(database.url)


def default_db(suite: Suite) -> Path:
    return suite.out / "results.sqlite"


def run_dir_of(suite: Suite, run: RunSpec) -> Path:
    return suite.out / "runs" / run.dataset / f"{run.model}-{run.run_id}"


#: A run is started under ``stop_after`` only when its estimated training time times this factor,
#: plus ``RUN_OVERHEAD_SECONDS`` (loading the store, the test pass, the inference cost), fits in
#: the time left: training times of one configuration vary by some 10% between seeds.
ESTIMATE_MARGIN = 1.15
RUN_OVERHEAD_SECONDS = 30.0


def next_run(queue: list[RunSpec], left: TimeLeft, seconds_left: float | None) -> RunSpec | None:
    """The next run to start: the first queued run (suite order) expected to end within
    ``seconds_left`` (None: no deadline, the first run). A run with no estimate at all (nothing in
    the suite has finished yet) is started while any time is left."""
    if seconds_left is None:
        return queue[0] if queue else None
    for r in queue:
        est = left.estimate(r.config_hash)
        need = 0.0 if est is None else est * ESTIMATE_MARGIN + RUN_OVERHEAD_SECONDS
        if seconds_left > 0 and need <= seconds_left:
            return r
    return None


def run_suite(
    suite: Suite,
    *,
    resume: bool = False,
    workers: int = 1,
    threads_per_worker: int | None = None,
    db: str | Path | None = None,
    progress: bool = True,
    on_record: Callable[[RunSpec, dict[str, Any]], None] | None = None,
    archive: str | Path | None = None,
    stop_after: float | None = None,
) -> BenchSummary:
    """Execute every run of ``suite`` not yet finished (with ``resume``) and record it.

    ``archive``: a directory kept up to date with a text copy of the results after every recorded
    run (:mod:`ctrkit.bench.archive`); with ``resume`` its runs that the database lacks are
    imported first. ``stop_after``: seconds; no run is started that is not expected to end by
    then (:func:`next_run`), and the call returns once the runs in flight have ended. The runs
    left over are counted in :attr:`BenchSummary.deferred` and run on the next ``resume``.
    """
    from ctrkit.bench.archive import export_archive, import_archive, read_archive_runs

    threads = thread_budget(workers, threads_per_worker)
    if stop_after is not None and stop_after < 0:
        raise ConfigError("--stop-after must not be negative")
    deadline = None if stop_after is None else time.monotonic() + stop_after
    suite.out.mkdir(parents=True, exist_ok=True)
    database = ResultsDB(db or default_db(suite))
    try:
        ours = {r.run_id for r in suite.runs}
        if archive is not None and Path(archive).exists():
            if resume:
                counts = import_archive(archive, database, suite.out, suite=suite.name)
                log.info("archive %s: %d runs imported, %d already recorded", archive, counts.imported, counts.kept)
            elif any(run[0]["run_id"] in ours for run in read_archive_runs(archive, suite=suite.name)):
                raise ConfigError(f"archive {archive} already holds runs of this suite; pass --resume to continue it")
        recorded = database.status()
        done = {rid for rid, s in recorded.items() if s == "finished" and rid in ours}
        if (recorded.keys() & ours) and not resume:
            raise ConfigError(f"{db_label(database)} already holds runs of this suite; pass --resume to continue it")
        pending = [r for r in suite.runs if r.run_id not in done]
        if not resume:
            for r in pending:  # a fresh start: no stale directory from an unrecorded earlier attempt
                shutil.rmtree(run_dir_of(suite, r), ignore_errors=True)
        prepare_datasets(suite, progress=False)
        env = environment()
        (suite.out / "suite.json").write_text(
            json.dumps({"name": suite.name, "source": str(suite.source) if suite.source else None, "db": db_label(database)}, indent=2) + "\n"
        )
        best: tuple[float, str] | None = None
        left = TimeLeft({r.run_id: r.config_hash for r in pending}, workers)
        if done:  # the best and the training times of the runs already recorded (resume)
            for row in database.runs(suite=suite.name):
                if row["run_id"] in done:
                    left.finished(row["config_hash"], row.get("train_seconds"))
            labels = {r.run_id: f"{r.dataset}/{r.model}" for r in suite.runs}
            for rid, m in database.metrics(list(done)).items():
                aucs = [v for (split, task, name), v in m.items() if split == "valid" and name == "auc"]
                if aucs and (best is None or aucs[0] > best[0]):
                    best = (aucs[0], labels[rid])
        finished = failed = 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            # tqdm's own estimate assumes runs of equal length; the postfix gives TimeLeft's instead.
            bar = tqdm(
                total=len(suite.runs), initial=len(done), desc=suite.name, unit="run", dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            )
            bar.set_postfix_str(_progress_note(best, 0, left))
        import multiprocessing as mp

        queue = list(pending)
        # Each invocation is one session of the suite's wall time (see ctrkit.bench.sessions).
        sessions = SessionLog(suite.out, workers=workers, threads=threads, pending=len(pending), total=len(suite.runs))
        with sessions, ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(threads, os.getpid())
        ) as pool:
            # Runs are handed out one per free worker (not all at once) so that each start can
            # look at the deadline with the estimates of the runs ended so far.
            in_flight: dict[Any, RunSpec] = {}

            def fill() -> None:
                while len(in_flight) < workers:
                    r = next_run(queue, left, None if deadline is None else deadline - time.monotonic())
                    if r is None:
                        return
                    try:
                        fut = pool.submit(execute_run, r.config, str(run_dir_of(suite, r)), threads)
                    except BrokenProcessPool:
                        # A worker was killed (out of memory, a signal): its run was recorded as
                        # failed; the others stay pending rather than being recorded as failed too.
                        raise CtrkitError(
                            f"a worker process died; {len(queue)} runs were not started: continue with --resume"
                        ) from None
                    queue.remove(r)
                    in_flight[fut] = r

            try:
                fill()
                while in_flight:
                    ready, _ = wait(set(in_flight), return_when=FIRST_COMPLETED)
                    for fut in ready:
                        r = in_flight.pop(fut)
                        try:
                            res = fut.result()
                        except Exception as e:  # the worker process itself died
                            res = {"status": "failed", "error": f"{type(e).__name__}: {e}", "finished_at": _now(), "metrics": []}
                        row = {
                            **env,
                            **{k: v for k, v in res.items() if k not in ("metrics", "evaluations", "valid_auc")},
                            "run_id": r.run_id,
                            "suite": r.suite,
                            "dataset": r.dataset,
                            "model": r.model,
                            "config": r.config,
                            "config_hash": r.config_hash,
                            "seed": r.seed,
                            "grid_point": r.grid_point,
                            "run_dir": str(run_dir_of(suite, r)),
                        }
                        database.record(row, res["metrics"], res.get("evaluations"))
                        sessions.run_recorded(r.run_id, res["status"])
                        left.recorded(r.run_id)
                        if res["status"] == "finished":
                            finished += 1
                            left.finished(r.config_hash, res.get("train_seconds"))
                            auc = res.get("valid_auc")
                            if auc is not None and (best is None or auc > best[0]):
                                best = (auc, f"{r.dataset}/{r.model}")
                        else:
                            failed += 1
                            log.warning("run %s (%s/%s seed %d) failed: %s", r.run_id, r.dataset, r.model, r.seed, res.get("error", "").splitlines()[0])
                        if archive is not None:
                            export_archive(database, suite.out, archive, suite=suite.name)
                        if on_record is not None:
                            on_record(r, res)
                        if bar is not None:
                            bar.set_postfix_str(_progress_note(best, failed, left), refresh=False)
                            bar.update(1)
                    fill()
            except BaseException:
                for f in in_flight:
                    f.cancel()
                raise
        if bar is not None:
            bar.close()
        if archive is not None:  # also when nothing ran: the imported runs and this session's lines
            export_archive(database, suite.out, archive, suite=suite.name)
        return BenchSummary(len(suite.runs), len(done), finished, failed, db_label(database), deferred=len(queue))
    finally:
        database.close()


__all__ = [
    "BenchSummary", "ESTIMATE_MARGIN", "RUN_OVERHEAD_SECONDS", "db_label", "environment", "execute_run", "measure_inference", "next_run", "peak_rss_mb", "prepare_datasets",
    "reset_peak_rss", "run_data", "run_dir_of", "run_evaluations", "run_suite", "thread_budget",
]  # fmt: skip

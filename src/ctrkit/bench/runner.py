"""Run a suite: worker processes with explicit thread budgets, results into SQLite, resumable.

Every run executes in a worker process (``multiprocessing`` *spawn*). Before torch is imported
there, the worker sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``POLARS_MAX_THREADS`` to its
budget and the run's ``training.threads`` is set to the same value, so ``workers x threads`` never
exceeds the cores (checked). Workers exit on their own when the runner dies (they watch their parent).

Only the runner writes the database, once per ended run, in one transaction (see
:mod:`ctrkit.bench.db`). On ``resume`` runs recorded as finished are skipped; any other run is
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
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ctrkit import __version__
from ctrkit.bench.db import ResultsDB, flatten_metrics
from ctrkit.bench.suite import RunSpec, Suite
from ctrkit.errors import ConfigError

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


def execute_run(config: dict[str, Any], run_dir: str, threads: int) -> dict[str, Any]:
    """Train one run in this process (a worker); returns its row fields and metrics rows."""
    from ctrkit.config import RunConfig
    from ctrkit.train.checkpoint import atomic_write_json, atomic_write_text
    from ctrkit.train.run import train

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
        elif (d / "config.yaml").exists():
            cfg = RunConfig.from_yaml(d / "config.yaml")
            cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"threads": threads})})
            atomic_write_text(cfg.to_yaml(), d / "config.yaml")
            metrics = train(None, resume=d).metrics  # type: ignore[arg-type]
        else:
            cfg = json.loads(json.dumps(config))
            cfg.setdefault("training", {}).update(threads=threads, progress=False)
            cfg["run_dir"] = str(d)
            metrics = train(cfg).metrics
    except Exception as e:  # a failed run is recorded as such; the suite goes on
        out.update(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}", finished_at=_now(), metrics=[])
        return out
    best = d / "best_model.pt"
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
    )
    task = primary_task(metrics)
    out["valid_auc"] = metrics["valid"][task].get("auc") if task else None
    return out


# ------------------------------------------------------------------ runner side
@dataclass
class BenchSummary:
    total: int
    skipped: int
    finished: int
    failed: int
    db: str


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
                except TypeError as e:
                    raise ConfigError(str(e), file=suite.source, key=f"datasets.{ds.label}.synthetic") from None
                log.info("synthesizing %s into %s", ds.label, src)
                synthesize(src, synth_cfg, overwrite=src.exists(), progress=progress)
        prepare_store(DatasetConfig.model_validate(ds.section), progress=progress)


def default_db(suite: Suite) -> Path:
    return suite.out / "results.sqlite"


def run_dir_of(suite: Suite, run: RunSpec) -> Path:
    return suite.out / "runs" / run.dataset / f"{run.model}-{run.run_id}"


def run_suite(
    suite: Suite,
    *,
    resume: bool = False,
    workers: int = 1,
    threads_per_worker: int | None = None,
    db: str | Path | None = None,
    progress: bool = True,
    on_record: Callable[[RunSpec, dict[str, Any]], None] | None = None,
) -> BenchSummary:
    """Execute every run of ``suite`` not yet finished (with ``resume``) and record it."""
    cores = os.cpu_count() or 1
    if workers < 1:
        raise ConfigError("--workers must be >= 1")
    threads = threads_per_worker or max(1, cores // workers)
    if workers * threads > cores:
        raise ConfigError(f"{workers} workers x {threads} threads exceeds the {cores} cores of this machine")
    suite.out.mkdir(parents=True, exist_ok=True)
    database = ResultsDB(db or default_db(suite))
    try:
        recorded = database.status()
        ours = {r.run_id for r in suite.runs}
        done = {rid for rid, s in recorded.items() if s == "finished" and rid in ours}
        if (recorded.keys() & ours) and not resume:
            raise ConfigError(f"{database.path} already holds runs of this suite; pass --resume to continue it")
        pending = [r for r in suite.runs if r.run_id not in done]
        if not resume:
            for r in pending:  # a fresh start: no stale directory from an unrecorded earlier attempt
                shutil.rmtree(run_dir_of(suite, r), ignore_errors=True)
        prepare_datasets(suite, progress=False)
        env = environment()
        (suite.out / "suite.json").write_text(
            json.dumps({"name": suite.name, "source": str(suite.source) if suite.source else None, "db": str(database.path)}, indent=2) + "\n"
        )
        best: tuple[float, str] | None = None
        if done:  # the best of the runs already recorded (resume)
            labels = {r.run_id: f"{r.dataset}/{r.model}" for r in suite.runs}
            for rid, m in database.metrics(list(done)).items():
                aucs = [v for (split, task, name), v in m.items() if split == "valid" and name == "auc"]
                if aucs and (best is None or aucs[0] > best[0]):
                    best = (aucs[0], labels[rid])
        finished = failed = 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(suite.runs), initial=len(done), desc=suite.name, unit="run", dynamic_ncols=True)
        import multiprocessing as mp

        by_id = {r.run_id: r for r in pending}
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(threads, os.getpid())
        ) as pool:
            futures = {pool.submit(execute_run, r.config, str(run_dir_of(suite, r)), threads): r.run_id for r in pending}
            try:
                remaining = set(futures)
                while remaining:
                    ready, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for fut in ready:
                        r = by_id[futures[fut]]
                        try:
                            res = fut.result()
                        except Exception as e:  # the worker process itself died
                            res = {"status": "failed", "error": f"{type(e).__name__}: {e}", "finished_at": _now(), "metrics": []}
                        row = {
                            **env,
                            **{k: v for k, v in res.items() if k not in ("metrics", "valid_auc")},
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
                        database.record(row, res["metrics"])
                        if res["status"] == "finished":
                            finished += 1
                            auc = res.get("valid_auc")
                            if auc is not None and (best is None or auc > best[0]):
                                best = (auc, f"{r.dataset}/{r.model}")
                        else:
                            failed += 1
                            log.warning("run %s (%s/%s seed %d) failed: %s", r.run_id, r.dataset, r.model, r.seed, res.get("error", "").splitlines()[0])
                        if on_record is not None:
                            on_record(r, res)
                        if bar is not None:
                            if best is not None:
                                bar.set_postfix_str(f"best valid AUC {best[0]:.5f} ({best[1]})" + (f", {failed} failed" if failed else ""))
                            bar.update(1)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        if bar is not None:
            bar.close()
        return BenchSummary(len(suite.runs), len(done), finished, failed, str(database.path))
    finally:
        database.close()


__all__ = ["BenchSummary", "environment", "execute_run", "prepare_datasets", "run_suite", "run_dir_of"]

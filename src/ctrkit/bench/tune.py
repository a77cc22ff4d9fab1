"""Hyper-parameter tuning with Optuna: TPE sampling, median pruning on validation AUC, a study
shared by any number of worker processes and machines.

Every (dataset, model) of a suite that declares a ``search`` space (see :mod:`ctrkit.bench.suite`)
is one Optuna study named ``<suite>/<dataset>/<model>``, kept in the database at ``study_url``:
a SQLite file in the benchmark directory by default, or a PostgreSQL server
(``postgresql://user:password@host/db``) so that several machines can work on the same study. A
trial trains the model's config with the sampled values; the trainer reports the validation AUC
after every evaluation (step = epoch) and the median pruner may stop the trial there. The trial's
value is the validation AUC of its best epoch (test metrics never steer the search).

Exactly ``trials`` trials per study, whatever the number of workers and machines: a worker
creates its next trial only while holding a lock shared by every worker of the study (an
``flock`` beside a SQLite file; a PostgreSQL advisory lock on a server) and only when fewer
trials than asked for exist. Trials count when they are complete, pruned, running, or failed by
their own run (a training error); a trial whose worker died (failed by Optuna's heartbeat after
``GRACE_SECONDS``) does not count, so running ``ctrkit tune`` again fills the gap.

Every ended trial is recorded in the results database like a benchmark run (``study`` and
``trial`` columns set; status ``finished``, ``pruned`` or ``failed``), by the worker that ran it,
in one transaction.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import socket
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from ctrkit.bench.db import ResultsDB, ResultsDBError, check_driver, db_path, db_url, flatten_history, flatten_metrics, is_sqlite, safe_url
from ctrkit.bench.runner import (
    _init_worker,
    _now,
    db_label,
    environment,
    execute_run,
    peak_rss_mb,
    prepare_datasets,
    primary_task,
    run_data,
    thread_budget,
)
from ctrkit.bench.suite import Param, SearchSpec, Suite, config_hash
from ctrkit.config import apply_overrides
from ctrkit.errors import ConfigError, CtrkitError

log = logging.getLogger("ctrkit.bench")

HEARTBEAT_SECONDS = 30  # a running trial's worker proves it is alive this often
GRACE_SECONDS = 120  # a running trial silent for this long is failed (its worker died)
_PRIMITIVES = (type(None), bool, int, float, str)


class TrialRunFailed(CtrkitError):
    """A trial's run ended in an error (recorded as a failed run; the study goes on)."""


# ------------------------------------------------------------------ databases and locks
def default_study_url(suite: Suite) -> str:
    return f"sqlite:///{suite.out / 'optuna.sqlite'}"


def default_results_url(suite: Suite, study_url: str) -> str:
    """Where trials are recorded unless told: beside a server study (several machines then share
    one results database too), else the benchmark directory's ``results.sqlite``."""
    return db_url(study_url) if not is_sqlite(study_url) else db_url(suite.out / "results.sqlite")


def _check_backend(url: str) -> str:
    backend = make_url(db_url(url)).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"study database {safe_url(url)}: only sqlite:///PATH and postgresql:// URLs are supported")
    if backend == "sqlite":
        db_path(url).parent.mkdir(parents=True, exist_ok=True)
    check_driver(url)
    return backend


def study_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage at ``url`` with heartbeats (so a dead worker's trial is noticed)."""
    url = db_url(url)
    sqlite = _check_backend(url) == "sqlite"
    # Several processes write one SQLite file: wait for its lock instead of failing at once.
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if sqlite else {"pool_pre_ping": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            # Optuna creates its tables when the storage is opened: two workers opening a new
            # database at once would race on them.
            lock = StudyLock(url, "ctrkit: optuna tables")
            try:
                with lock:
                    return optuna.storages.RDBStorage(
                        url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
                    )
            finally:
                lock.close()
        except OperationalError as e:
            raise ResultsDBError(f"study database {safe_url(url)}: {e.orig or e}") from None


class StudyLock:
    """A lock held by one worker at a time, across processes (SQLite: ``flock`` on a file beside
    the database, so one machine) or machines (PostgreSQL: a session advisory lock keyed by the
    study name). Around "count the trials, create the next one", which Optuna does not make atomic
    across processes. ``release`` may be called when not held."""

    def __init__(self, url: str, study_name: str):
        url = db_url(url)
        self._held = False
        self._file: Any = None
        self._conn: Any = None
        if _check_backend(url) == "sqlite":
            path = db_path(url)
            self._file = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115
        else:
            self._engine = create_engine(url, poolclass=NullPool)
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)

    def acquire(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        else:
            self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        else:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})

    def close(self) -> None:
        self.release()
        if self._file is not None:
            self._file.close()
        else:
            self._conn.close()
            self._engine.dispose()

    def __enter__(self) -> "StudyLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _sampler() -> optuna.samplers.BaseSampler:
    # constant_liar: a running trial counts as a bad result meanwhile, so parallel workers do not
    # all sample the same promising point. No seed: workers sharing a seed would propose the same
    # random start-up points.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(constant_liar=True)


def _pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    if spec.pruner is None:
        return optuna.pruners.NopPruner()
    # Steps are epochs (1-based); Optuna's earliest pruning step is n_warmup_steps.
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.pruner["startup_trials"], n_warmup_steps=spec.pruner["warmup_epochs"] + 1
    )


def open_study(spec: SearchSpec, storage: optuna.storages.RDBStorage, lock: StudyLock) -> optuna.Study:
    """Create the study if it does not exist (under the lock: two workers starting at once on a new
    database would otherwise race on Optuna's tables), else load it."""
    with lock:
        return optuna.create_study(
            study_name=spec.study_name,
            storage=storage,
            direction="maximize",
            sampler=_sampler(),
            pruner=_pruner(spec),
            load_if_exists=True,
        )


def uses_budget(t: FrozenTrial) -> bool:
    """Whether a trial counts towards the study's trials: every trial except one failed without
    an error of its own run (its worker died or was interrupted), which is done again."""
    return t.state != TrialState.FAIL or "error" in t.user_attrs


def ended(t: FrozenTrial) -> bool:
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and "error" in t.user_attrs)


# ------------------------------------------------------------------ sampling
def suggest(trial: Trial, space: dict[str, Param]) -> dict[str, Any]:
    """Sample one point of ``space`` (dotted config key -> value)."""
    point: dict[str, Any] = {}
    for key, p in space.items():
        if p.kind == "categorical":
            if all(isinstance(c, _PRIMITIVES) for c in p.choices):
                point[key] = trial.suggest_categorical(key, list(p.choices))
            else:  # Optuna stores only primitive choices: lists (e.g. hidden_units) go as JSON
                point[key] = json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in p.choices]))
        elif p.kind == "int":
            point[key] = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)  # type: ignore[arg-type]
        else:
            point[key] = trial.suggest_float(key, float(p.low), float(p.high), step=p.step, log=p.log)  # type: ignore[arg-type]
    return point


def trial_run_id(study_name: str, number: int) -> str:
    """The results-database id of a trial: unique per study and trial (two trials may sample the
    same configuration, and each is recorded once)."""
    return hashlib.sha256(json.dumps({"study": study_name, "trial": number}).encode()).hexdigest()[:16]


def trial_dir(suite_out: Path, spec: SearchSpec, number: int) -> Path:
    return suite_out / "tune" / spec.dataset / f"{spec.model}-trial{number:05d}"


# ------------------------------------------------------------------ worker side
def _objective(
    spec: SearchSpec, out: Path, threads: int, db: ResultsDB, env: dict[str, Any], lock: StudyLock
) -> Callable[[Trial], float]:
    def objective(trial: Trial) -> float:
        lock.release()  # the trial exists: let the next worker create its own
        point = suggest(trial, spec.space)
        cfg = apply_overrides(spec.config, [f"{k}={json.dumps(v)}" for k, v in point.items()])
        rid = trial_run_id(spec.study_name, trial.number)
        d = trial_dir(out, spec, trial.number)
        shutil.rmtree(d, ignore_errors=True)  # left by an earlier study of the same name
        trial.set_user_attr("run_id", rid)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("run_dir", str(d))
        trial.set_user_attr("point", point)  # the values as the config got them (choices decoded)
        row = {
            **env,
            "run_id": rid,
            "suite": spec.suite,
            "dataset": spec.dataset,
            "model": spec.model,
            "config": cfg,
            "config_hash": config_hash(cfg, spec.data),
            "seed": int(cfg["training"]["seed"]),
            "grid_point": point,
            "run_dir": str(d),
            "study": spec.study_name,
            "trial": trial.number,
            "threads": threads,
        }
        last: dict[str, Any] = {}
        evaluations: list[tuple[int, str, str, str, float]] = []

        def on_evaluation(epoch: int, metrics: dict[str, dict[str, Any]]) -> None:
            task = primary_task({"valid": metrics})
            auc = metrics[task].get("auc") if task else None
            last.update(epoch=epoch, metrics=metrics)
            evaluations.extend(flatten_history([{"epoch": epoch, "valid": metrics}]))
            if auc is None or not math.isfinite(auc):
                return
            trial.report(float(auc), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"valid AUC {auc:.5f} at epoch {epoch}")

        started = _now()
        try:
            res = execute_run(cfg, str(d), threads, on_evaluation=on_evaluation)
        except optuna.TrialPruned:
            valid = {"valid": last.get("metrics", {})}
            db.record(
                {**row, "status": "pruned", "started_at": started, "finished_at": _now(), "peak_rss_mb": peak_rss_mb(),
                 "error": f"pruned after epoch {last.get('epoch')}", **run_data(d)},
                flatten_metrics(valid),
                evaluations,
            )  # fmt: skip
            raise
        db.record({**row, **{k: v for k, v in res.items() if k not in ("metrics", "evaluations", "valid_auc")}}, res["metrics"], res.get("evaluations"))
        auc = res.get("valid_auc")
        if res["status"] != "finished" or auc is None or not math.isfinite(auc):
            reason = (res.get("error") or f"validation AUC is {auc}").splitlines()[0]
            trial.set_user_attr("error", reason)
            raise TrialRunFailed(reason)
        return float(auc)

    return objective


def tune_worker(specs: list[SearchSpec], study_url: str, results_url: str, out: str, threads: int, trials: int | None) -> int:
    """Run trials of each study in turn until each has its trials; returns how many this worker
    ran. Runs in a worker process (its thread budget is set by the pool's initializer)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    storage = study_storage(study_url)
    env = environment()
    ran = 0
    with ResultsDB(results_url) as db:
        for spec in specs:
            target = trials or spec.trials
            lock = StudyLock(study_url, spec.study_name)
            try:
                study = open_study(spec, storage, lock)
                objective = _objective(spec, Path(out), threads, db, env, lock)
                while True:
                    lock.acquire()
                    try:
                        optuna.storages.fail_stale_trials(study)  # a dead worker's trial is done again
                        if sum(uses_budget(t) for t in study.get_trials(deepcopy=False)) >= target:
                            break
                        # Creates the trial under the lock; the objective releases it at once.
                        study.optimize(objective, n_trials=1, catch=(TrialRunFailed,))
                        ran += 1
                    finally:
                        lock.release()
            finally:
                lock.close()
    return ran


# ------------------------------------------------------------------ runner side
@dataclass
class StudySummary:
    name: str
    target: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_run_id: str | None = None


@dataclass
class TuneSummary:
    studies: list[StudySummary]
    study_url: str  # without password
    db: str  # results database (file or URL without password)
    ran_here: int  # trials run by this invocation's workers
    errors: list[str] = field(default_factory=list)  # workers that died


def summarize(study: optuna.Study, target: int) -> StudySummary:
    s = StudySummary(study.study_name, target)
    best: FrozenTrial | None = None
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            s.complete += 1
            if t.value is not None and (best is None or t.value > best.value):  # type: ignore[operator]
                best = t
        elif t.state == TrialState.PRUNED:
            s.pruned += 1
        elif t.state == TrialState.RUNNING:
            s.running += 1
        elif t.state == TrialState.FAIL and "error" in t.user_attrs:
            s.failed += 1
    if best is not None:
        s.best_value, s.best_trial, s.best_run_id = best.value, best.number, best.user_attrs.get("run_id")
        s.best_params = dict(best.user_attrs.get("point") or best.params)
    return s


def tune_suite(
    suite: Suite,
    *,
    study_url: str | None = None,
    db: str | Path | None = None,
    trials: int | None = None,
    models: list[str] | None = None,
    workers: int = 1,
    threads_per_worker: int | None = None,
    progress: bool = True,
) -> TuneSummary:
    """Tune every (dataset, model) of ``suite`` that has a search space (or only ``models``).

    ``trials`` (default: each search's own) is the number of trials each study should have in
    all: run it again, or on more machines with the same ``study_url``, and only the missing
    trials are run. ``workers`` processes with ``threads_per_worker`` threads each work on the
    studies one after the other.
    """
    specs = [s for s in suite.searches if models is None or s.model in models]
    if models is not None:
        unknown = set(models) - {s.model for s in suite.searches}
        if unknown:
            raise ConfigError(f"model(s) {sorted(unknown)} of --model have no 'search' in the suite", file=suite.source)
    if not specs:
        raise ConfigError("no model of the suite has a 'search' section to tune", file=suite.source)
    if trials is not None and trials < 1:
        raise ConfigError("--trials must be >= 1")
    threads = thread_budget(workers, threads_per_worker)
    study_url = db_url(study_url or default_study_url(suite))
    _check_backend(study_url)
    results_url = db_url(db) if db is not None else default_results_url(suite, study_url)
    suite.out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    # Several invocations on one machine share the benchmark directory: build its data once.
    with open(suite.out / ".prepare.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        prepare_datasets(suite, progress=False)
    with ResultsDB(results_url) as database:  # created / migrated here, before the workers
        label = db_label(database)
    storage = study_storage(study_url)
    studies = []
    for spec in specs:
        lock = StudyLock(study_url, spec.study_name)
        try:
            studies.append(open_study(spec, storage, lock))
        finally:
            lock.close()
    targets = [trials or spec.trials for spec in specs]

    def tally() -> tuple[int, tuple[float, str] | None]:
        done, best = 0, None
        for spec, study, target in zip(specs, studies, targets):
            ts = study.get_trials(deepcopy=False)
            done += min(target, sum(ended(t) for t in ts))
            for t in ts:
                if t.state == TrialState.COMPLETE and t.value is not None and (best is None or t.value > best[0]):
                    best = (t.value, f"{spec.dataset}/{spec.model}")
        return done, best

    bar = None
    if progress:
        from tqdm.auto import tqdm

        done, _ = tally()
        bar = tqdm(total=sum(targets), initial=done, desc=f"tune {suite.name}", unit="trial", dynamic_ncols=True)
    import multiprocessing as mp

    ran, errors = 0, []
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(threads, os.getpid())
    ) as pool:
        futures = [pool.submit(tune_worker, specs, study_url, results_url, str(suite.out), threads, trials) for _ in range(workers)]
        try:
            while not all(f.done() for f in futures):
                time.sleep(1.0)
                if bar is not None:
                    done, best = tally()
                    if best is not None:
                        bar.set_postfix_str(f"best valid AUC {best[0]:.5f} ({best[1]})")
                    bar.update(done - bar.n)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        for f in futures:
            try:
                ran += f.result()
            except Exception as e:  # a worker died; the others went on
                errors.append(f"{type(e).__name__}: {e}")
    if bar is not None:
        bar.update(tally()[0] - bar.n)
        bar.close()
    return TuneSummary([summarize(s, t) for s, t in zip(studies, targets)], safe_url(study_url), label, ran, errors)


__all__ = [
    "StudyLock", "StudySummary", "TrialRunFailed", "TuneSummary", "default_results_url", "default_study_url",
    "study_storage", "suggest", "trial_run_id", "tune_suite", "tune_worker", "uses_budget",
]  # fmt: skip

"""Tuning with Optuna: two independent worker processes share one study (SQLite, then a throwaway
PostgreSQL server) without losing or repeating a trial; pruned trials are recorded."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from ctrkit.bench.db import ResultsDB
from ctrkit.bench.runner import prepare_datasets
from ctrkit.bench.suite import load_suite
from ctrkit.bench.tune import study_storage, trial_run_id, tune_worker

sys.path.insert(0, str(Path(__file__).parent))
from test_db import pg_url  # noqa: E402,F401  (the throwaway PostgreSQL server fixture)

TRAINING = {"epochs": 2, "batch_size": 256, "learning_rate": 3e-3, "prefetch": 0, "progress": False}


def tune_suite_dict(out: Path, name: str = "tiny", trials: int = 6) -> dict:
    return {
        "name": name,
        "out": str(out),
        "datasets": [{"label": "synth", "synthetic": {"rows": 2000, "num_numeric": 2, "num_categorical": 6, "signal_scale": 2.0, "seed": 5}}],
        "training": dict(TRAINING),
        "models": [
            {"name": "LR"},  # no search: not tuned
            {
                "name": "DNN",
                "params": {"embedding_dim": 4, "hidden_units": [8]},
                "search": {
                    "trials": trials,
                    "pruner": {"startup_trials": 2, "warmup_epochs": 0},
                    "space": {
                        "training.learning_rate": {"low": 1.0e-4, "high": 3.0e-2, "log": True},
                        "model.params.hidden_units": [[8], [16, 8]],
                        "model.params.embedding_dim": {"low": 2, "high": 6, "step": 2},
                    },
                },
            },
        ],
        "seeds": [11],
    }


def check_study(study_url: str, results_url: str, name: str, n: int) -> list[optuna.trial.FrozenTrial]:
    """n trials numbered 0..n-1, all ended, each recorded exactly once in the results database."""
    trials = optuna.load_study(study_name=name, storage=study_storage(study_url)).get_trials()
    assert sorted(t.number for t in trials) == list(range(n))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [t.state for t in trials]
    with ResultsDB(results_url) as db:
        rows = db.runs(status=None, study=name)
        metrics = db.metrics([r["run_id"] for r in rows])
    assert sorted(r["trial"] for r in rows) == list(range(n))
    by_trial = {r["trial"]: r for r in rows}
    for t in trials:
        row = by_trial[t.number]
        assert row["run_id"] == t.user_attrs["run_id"] == trial_run_id(name, t.number)
        assert row["grid_point"] and row["peak_rss_mb"] > 0
        if t.state == TrialState.COMPLETE:
            assert row["status"] == "finished"
            assert metrics[row["run_id"]][("valid", "click", "auc")] == pytest.approx(t.value)
            assert ("test", "click", "auc") in metrics[row["run_id"]]
            assert row["infer_single_ms"] > 0 and row["infer_batch_rows_per_sec"] > 0
        else:
            assert row["status"] == "pruned" and ("valid", "click", "auc") in metrics[row["run_id"]]
    return trials


def run_two_workers(tmp_path: Path, suite: dict, *extra: str) -> list[int]:
    """Two independent `ctrkit tune` processes (as on two machines) on one study; returns how many
    trials each says it ran."""
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    cmd = [sys.executable, "-m", "ctrkit.cli", "tune", str(path), "--workers", "1", "--threads-per-worker", "1", "--quiet", *extra]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [int(re.search(r"(\d+) trials run here", out).group(1)) for out, _ in outs]  # type: ignore[union-attr]


@pytest.mark.slow
def test_two_workers_share_a_sqlite_study(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "bench"
    ran = run_two_workers(tmp_path, tune_suite_dict(out, trials=6))
    assert sum(ran) == 6  # no trial run twice, none lost
    check_study(f"sqlite:///{out / 'optuna.sqlite'}", str(out / "results.sqlite"), "tiny/synth/DNN", 6)


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(tmp_path, monkeypatch, pg_url):  # noqa: F811
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ran = run_two_workers(tmp_path, tune_suite_dict(tmp_path / "bench", name="pg", trials=6), "--study-url", pg_url)
    assert sum(ran) == 6
    check_study(pg_url, pg_url, "pg/synth/DNN", 6)  # results go beside a server study by default
    assert not (tmp_path / "bench" / "results.sqlite").exists()


def test_pruned_trials_are_recorded(tmp_path, monkeypatch):
    """A pruner that stops every trial at its first evaluation: each trial is recorded as pruned
    with the validation metrics it had, and the study still gets exactly its trials."""
    import ctrkit.bench.tune as tune

    monkeypatch.setattr(tune, "_pruner", lambda spec: optuna.pruners.ThresholdPruner(lower=1.0))
    suite = load_suite(tune_suite_dict(tmp_path / "b", trials=2))
    prepare_datasets(suite)
    study_url, results_url = f"sqlite:///{tmp_path / 'b' / 'study.sqlite'}", str(tmp_path / "b" / "r.sqlite")
    assert tune_worker(suite.searches, study_url, results_url, str(suite.out), 1, None) == 2
    assert tune_worker(suite.searches, study_url, results_url, str(suite.out), 1, None) == 0  # nothing left
    assert tune_worker(suite.searches, study_url, results_url, str(suite.out), 1, 3) == 1  # only the missing one
    trials = check_study(study_url, results_url, "tiny/synth/DNN", 3)
    assert {t.state for t in trials} == {TrialState.PRUNED}
    assert all(t.intermediate_values.keys() == {1} for t in trials)  # reported at epoch 1
    with ResultsDB(results_url) as db:
        assert db.runs() == []  # a pruned trial is not a finished run: not on the leaderboard


def test_a_dead_workers_trial_is_done_again(tmp_path, monkeypatch):
    """A trial left running by a worker that died stops counting once its heartbeat is stale: the
    next worker fails it and runs a replacement, so the study still ends with its trials."""
    import time
    import warnings

    import ctrkit.bench.tune as tune

    monkeypatch.setattr(tune, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(tune, "GRACE_SECONDS", 1)
    suite = load_suite(tune_suite_dict(tmp_path / "b", trials=2))
    (spec,) = suite.searches
    prepare_datasets(suite)
    study_url, results_url = f"sqlite:///{tmp_path / 'b' / 'study.sqlite'}", str(tmp_path / "b" / "r.sqlite")
    storage = study_storage(study_url)
    study = optuna.create_study(study_name=spec.study_name, storage=storage, direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's: heartbeats are meant for Study.optimize
        dead = study.ask()  # a worker created this trial, beat once, then died
    storage.record_heartbeat(dead._trial_id)
    time.sleep(2.5)  # past the grace period
    assert tune_worker(suite.searches, study_url, results_url, str(suite.out), 1, None) == 2
    trials = study.get_trials()
    assert [t.state for t in trials][0] == TrialState.FAIL
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 2
    with ResultsDB(results_url) as db:
        assert sorted(r["trial"] for r in db.runs(status=None)) == [1, 2]

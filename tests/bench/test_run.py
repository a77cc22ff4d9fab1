"""A tiny suite end to end (2 workers x 1 thread), the results database, the leaderboard, and
resume after the runner process is killed mid-suite."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy.exc
import yaml

from ctrkit.bench.db import ResultsDB
from ctrkit.bench.report import write_report
from ctrkit.bench.runner import run_suite
from ctrkit.bench.sessions import read_sessions
from ctrkit.bench.suite import load_suite
from ctrkit.nn import field_attention
from ctrkit.train.allocator import reuse_wanted
from ctrkit.train.optimizers import native_available

TRAINING = {"epochs": 1, "batch_size": 256, "learning_rate": 3e-3, "prefetch": 0, "progress": False}
MODELS = [
    {"name": "LR"},
    {"name": "FM", "params": {"embedding_dim": 4}},
    {"name": "DNN", "params": {"embedding_dim": 4, "hidden_units": [16]}},
]


def tiny_suite(out: Path, seeds=(1, 2), models=MODELS, **extra) -> dict:
    return {
        "name": "tiny",
        "out": str(out),
        "datasets": [{"label": "synth", "synthetic": {"rows": 3000, "num_numeric": 2, "num_categorical": 6, "signal_scale": 2.0, "seed": 5}}],
        "training": dict(TRAINING),
        "models": models,
        "seeds": list(seeds),
        **extra,
    }


def check_db(path: Path, expected_ids: set[str]) -> None:
    """Every run exactly once, finished, with metrics; no metrics without a run."""
    con = sqlite3.connect(path)
    ids = [r[0] for r in con.execute("SELECT run_id FROM runs")]
    assert sorted(ids) == sorted(expected_ids)
    assert {r[0] for r in con.execute("SELECT status FROM runs")} == {"finished"}
    orphans = con.execute("SELECT COUNT(*) FROM metrics WHERE run_id NOT IN (SELECT run_id FROM runs)").fetchone()[0]
    assert orphans == 0
    for rid in ids:
        ms = {(s, t, m) for s, t, m in con.execute("SELECT split, task, metric FROM metrics WHERE run_id = ?", (rid,))}
        assert {("valid", "click", "auc"), ("test", "click", "auc"), ("test", "click", "logloss")} <= ms
    row = con.execute("SELECT parameters, model_bytes, train_seconds, train_samples_per_sec, eval_samples_per_sec, threads, library_versions, cpu_model, ctrkit_version FROM runs").fetchone()
    assert row[0] > 0 and row[1] > 0 and row[2] > 0 and row[3] > 0 and row[4] > 0 and row[5] == 1
    libs = json.loads(row[6])
    assert set(libs) == {
        "torch", "polars", "numpy", "ctrkit attention kernels", "ctrkit row-sparse update", "ctrkit malloc reuse"
    } and row[7] and row[8]
    assert libs["ctrkit attention kernels"] == field_attention.kernels()
    assert libs["ctrkit row-sparse update"] == ("c" if native_available() else None)
    assert libs["ctrkit malloc reuse"] == ("on" if reuse_wanted() else None)
    # Costs: every run trained in its worker has a peak memory; every run has inference figures.
    for rss, single, batch in con.execute("SELECT peak_rss_mb, infer_single_ms, infer_batch_rows_per_sec FROM runs"):
        assert (rss is None or rss > 0) and single > 0 and batch > 0
    assert con.execute("SELECT COUNT(*) FROM runs WHERE peak_rss_mb > 0").fetchone()[0] >= 1
    # Per-evaluation metrics (one epoch each here) and the data each run saw.
    for rid in ids:
        ev = {(e, s, t, m) for e, s, t, m in con.execute("SELECT epoch, split, task, metric FROM evaluations WHERE run_id = ?", (rid,))}
        assert {(1, "valid", "click", "auc"), (1, "valid", "click", "logloss"), (1, "train", "all", "loss")} <= ev
    fingerprints = {r[0] for r in con.execute("SELECT data_fingerprint FROM runs")}
    assert len(fingerprints) == 1 and None not in fingerprints
    for (checksums,) in con.execute("SELECT data_checksums FROM runs"):
        assert set(json.loads(checksums)) == {"train", "valid", "test"}
    con.close()


@pytest.mark.slow
def test_tiny_suite_end_to_end(tmp_path):
    suite = load_suite(tiny_suite(tmp_path / "bench"))
    assert len(suite.runs) == 6
    seen = []
    summary = run_suite(suite, workers=2, threads_per_worker=1, progress=False, on_record=lambda r, res: seen.append(r.run_id))
    assert (summary.finished, summary.failed, summary.skipped) == (6, 0, 0)
    assert (tmp_path / "bench" / "data" / "synth" / "truth.json").exists()
    check_db(tmp_path / "bench" / "results.sqlite", {r.run_id for r in suite.runs})
    # running again without --resume refuses; with it, nothing is left to do
    with pytest.raises(Exception, match="--resume"):
        run_suite(suite, workers=1, threads_per_worker=1, progress=False)
    again = run_suite(suite, resume=True, workers=1, threads_per_worker=1, progress=False)
    assert (again.finished, again.skipped) == (0, 6)
    # two invocations, two sessions of the suite's wall time, each ended normally
    sessions = read_sessions(tmp_path / "bench")
    assert sessions is not None and [s.ended for s in sessions.sessions] == [True, True]
    assert [s.runs_recorded for s in sessions.sessions] == [6, 0]
    assert [(s.workers, s.threads) for s in sessions.sessions] == [(2, 1), (1, 1)]

    md = write_report(tmp_path / "bench").read_text()
    assert "Wall time " in md and "over 2 sessions" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("|  | model")]
    assert sorted(r.split("|")[2].strip() for r in rows) == ["DNN", "FM", "LR"]
    assert all(" ± " in r for r in rows)
    assert "Bayes-optimal test AUC" in md and "Bayes − AUC" in md
    assert rows[0].split("|")[1].strip() == "★"


@pytest.mark.slow
def test_grid_picks_best_config_by_valid_auc(tmp_path):
    suite = load_suite(tiny_suite(tmp_path / "b", seeds=(1,), models=[{"name": "LR", "grid": {"training.learning_rate": [1e-4, 3e-2]}}]))
    run_suite(suite, workers=2, threads_per_worker=1, progress=False, db=f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert not (tmp_path / "b" / "results.sqlite").exists()
    from ctrkit.bench.report import leaderboard_rows

    with ResultsDB(f"sqlite:///{tmp_path / 'other.sqlite'}") as db:
        (row,) = leaderboard_rows(db)["synth"]["rows"]
        valid = {r["config_hash"]: db.metrics()[r["run_id"]][("valid", "click", "auc")] for r in db.runs()}
    assert row["configs"] == 2 and valid[row["config_hash"]] == max(valid.values())
    assert "LR `{" in write_report(tmp_path / "b").read_text()  # the grid point is shown


def test_a_failing_record_leaves_nothing(tmp_path):
    with ResultsDB(tmp_path / "r.sqlite") as db:
        run = {"run_id": "x", "suite": "s", "dataset": "d", "model": "m", "config": {}, "config_hash": "h", "seed": 1, "status": "finished"}
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            # the second metric row repeats the primary key: the whole run must roll back
            db.record(run, [("test", "click", "auc", 0.7), ("test", "click", "auc", 0.8)])
        assert db.status() == {}
        assert db.count("metrics") == 0
        db.record(run, [("test", "click", "auc", 0.7)])
        db.record({**run, "status": "failed"}, [])  # replaces, never duplicates
        assert db.status() == {"x": "failed"}
        assert db.count("metrics") == 0


@pytest.mark.slow
def test_killed_runner_resumes_without_losing_or_repeating_runs(tmp_path):
    out = tmp_path / "bench"
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(yaml.safe_dump(tiny_suite(out, seeds=(1, 2))))
    suite = load_suite(suite_path)
    db_file = out / "results.sqlite"
    cmd = [sys.executable, "-c", "from ctrkit.commands.bench import bench_cmd; bench_cmd()", str(suite_path), "--workers", "1", "--threads-per-worker", "1", "--quiet", "--no-report"]
    env = dict(os.environ, OMP_NUM_THREADS="1", CTRKIT_TEST_STEP_DELAY="0.02")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recorded = 0
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if db_file.exists():
                try:
                    con = sqlite3.connect(db_file, timeout=5)
                    recorded = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    recorded = 0  # tables not created yet
                if recorded >= 1:
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.05)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the suite finished before it could be killed"
    time.sleep(1.5)  # orphaned workers notice their parent is gone and exit
    con = sqlite3.connect(db_file)
    before = {r[0] for r in con.execute("SELECT run_id FROM runs")}
    con.close()
    assert 1 <= len(before) < len(suite.runs)

    resumed = run_suite(suite, resume=True, workers=2, threads_per_worker=1, progress=False)
    assert resumed.skipped == len(before) and resumed.finished == len(suite.runs) - len(before) and resumed.failed == 0
    check_db(db_file, {r.run_id for r in suite.runs})
    # the killed session has no end line but still counts; the resumed one recorded the rest
    killed, second = read_sessions(out).sessions
    assert not killed.ended and second.ended
    assert second.runs_recorded == len(suite.runs) - len(before)
    assert killed.seconds > 0 and second.seconds >= 0

"""The results database on SQLAlchemy: URLs, atomic records, migration of older SQLite files, and
the same operations on a throwaway PostgreSQL server (skipped where PostgreSQL is not installed)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy.exc

from ctrkit.bench.db import ADDED_COLUMNS, ResultsDB, ResultsDBError, db_path, db_url, safe_url

RUN = {"run_id": "x", "suite": "s", "dataset": "d", "model": "m", "config": {"a": 1}, "config_hash": "h", "seed": 1, "status": "finished"}

# The database as written before cost, study and trial columns (and the 'pruned' status) existed.
OLD_SCHEMA = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, dataset TEXT NOT NULL, model TEXT NOT NULL,
    config TEXT NOT NULL, config_hash TEXT NOT NULL, seed INTEGER NOT NULL, grid_point TEXT,
    ctrkit_version TEXT, git_commit TEXT, library_versions TEXT, cpu_model TEXT, threads INTEGER,
    status TEXT NOT NULL CHECK (status IN ('finished', 'failed')), error TEXT, started_at TEXT,
    finished_at TEXT, run_dir TEXT, parameters INTEGER, model_bytes INTEGER, train_seconds REAL,
    train_samples_per_sec REAL, eval_samples_per_sec REAL
);
CREATE TABLE metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, split TEXT NOT NULL,
    task TEXT NOT NULL, metric TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, split, task, metric)
);
CREATE INDEX runs_by_suite ON runs(suite, dataset, model, config_hash);
"""


# ------------------------------------------------------------------ a throwaway PostgreSQL server
def postgres_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server binaries (package ``postgresql``), if any."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return Path(d)
    return None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """initdb + pg_ctl in a temporary directory, listening on a free loopback port; yields its URL
    and removes everything afterwards. Skips when the binaries or the driver are missing."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is in the 'postgres' extra: pip install -e '.[postgres]'")
    # initdb refuses to run as root: run the server as the 'postgres' user the package creates.
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without 'runuser' to start PostgreSQL as another user")
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="ctrkit-pg-"))  # not under pytest's root-only tmp dir
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if as_user:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off"
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60", "start"],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


# ------------------------------------------------------------------ tests
def test_urls(tmp_path):
    assert db_url(tmp_path / "r.sqlite") == f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert db_url("postgresql://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    assert db_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert "pw" not in safe_url("postgresql://u:pw@h/db")
    assert db_path(f"sqlite:///{tmp_path}/a.sqlite") == tmp_path / "a.sqlite"
    with pytest.raises(ValueError, match="not a SQLite file"):
        db_path("postgresql://u@h/db")


def check_records(db: ResultsDB) -> None:
    """A run and its metrics are written together or not at all, and replaced, never doubled."""
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        db.record(RUN, [("test", "click", "auc", 0.7), ("test", "click", "auc", 0.8)])  # repeated key
    assert db.status() == {} and db.count("metrics") == 0
    cost = {"peak_rss_mb": 312.5, "infer_single_ms": 0.21, "infer_batch_rows_per_sec": 4.0e5}
    db.record({**RUN, **cost}, [("test", "click", "auc", 0.7), ("valid", "click", "auc", 0.71)])
    (row,) = db.runs()
    assert {k: row[k] for k in cost} == cost and row["config"] == '{"a": 1}'
    assert db.metrics() == {"x": {("test", "click", "auc"): 0.7, ("valid", "click", "auc"): 0.71}}
    db.record({**RUN, "status": "pruned", "study": "s/d/m", "trial": 3}, [("valid", "click", "auc", 0.6)])
    assert db.status() == {"x": "pruned"} and db.count("metrics") == 1
    assert db.runs(status="pruned", study="s/d/m")[0]["trial"] == 3
    with pytest.raises(ValueError, match="status"):
        db.record({**RUN, "status": "done"}, [])


def test_sqlite_records(tmp_path):
    with ResultsDB(tmp_path / "sub" / "r.sqlite") as db:  # the directory is created
        check_records(db)


def test_older_sqlite_database_is_migrated(tmp_path):
    f = tmp_path / "old.sqlite"
    con = sqlite3.connect(f)
    con.executescript(OLD_SCHEMA)
    con.execute("INSERT INTO runs (run_id, suite, dataset, model, config, config_hash, seed, status) VALUES ('a', 's', 'd', 'm', '{}', 'h', 1, 'finished')")
    con.execute("INSERT INTO metrics VALUES ('a', 'test', 'click', 'auc', 0.75)")
    con.commit()
    con.close()
    for _ in range(2):  # migrating twice is a no-op
        with ResultsDB(f) as db:
            assert db.status() == {"a": "finished"}
            assert db.metrics() == {"a": {("test", "click", "auc"): 0.75}}  # not cascaded away
            (row,) = db.runs()
            assert all(k in row and row[k] is None for k in ADDED_COLUMNS)
    with ResultsDB(f) as db:
        db.record({**RUN, "status": "pruned"}, [])  # the rebuilt status check admits 'pruned'
    con = sqlite3.connect(f)
    assert {r[1] for r in con.execute("PRAGMA table_info(runs)")} >= set(ADDED_COLUMNS)
    assert con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'runs_by_suite'").fetchone()
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO runs (run_id, suite, dataset, model, config, config_hash, seed, status) VALUES ('b', 's', 'd', 'm', '{}', 'h', 1, 'bogus')")
    con.close()


def test_a_foreign_table_is_a_clear_error(tmp_path):
    f = tmp_path / "other.sqlite"
    con = sqlite3.connect(f)
    con.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
    con.close()
    with pytest.raises(ResultsDBError, match="lacks column"):
        ResultsDB(f)


def test_postgresql_records(pg_url):
    with ResultsDB(pg_url) as db:
        assert db.path is None and db.dialect == "postgresql"
        check_records(db)
        db.record({**RUN, "run_id": "big", "parameters": 3_000_000_000}, [])  # beyond 32-bit
        assert {r["run_id"]: r["parameters"] for r in db.runs(status=None)}["big"] == 3_000_000_000
    with ResultsDB(pg_url) as db:  # reopening an existing database
        assert set(db.status()) == {"x", "big"}


@pytest.mark.slow
def test_a_suite_records_into_postgresql(tmp_path, pg_url):
    from ctrkit.bench.runner import run_suite
    from ctrkit.bench.suite import load_suite

    suite = load_suite({
        "name": "pgsuite",
        "out": str(tmp_path / "bench"),
        "datasets": [{"label": "synth", "synthetic": {"rows": 2000, "num_numeric": 2, "num_categorical": 6, "seed": 5}}],
        "training": {"epochs": 1, "batch_size": 256, "prefetch": 0, "progress": False},
        "models": [{"name": "LR"}],
        "seeds": [1, 2],
    })  # fmt: skip
    summary = run_suite(suite, workers=1, threads_per_worker=1, progress=False, db=pg_url)
    assert (summary.finished, summary.failed) == (2, 0) and "postgresql" in summary.db
    assert not (tmp_path / "bench" / "results.sqlite").exists()
    with ResultsDB(pg_url) as db:
        rows = db.runs(suite="pgsuite")
        assert sorted(r["seed"] for r in rows) == [1, 2]
        assert all(r["infer_single_ms"] > 0 and r["infer_batch_rows_per_sec"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    again = run_suite(suite, resume=True, workers=1, threads_per_worker=1, progress=False, db=pg_url)
    assert (again.finished, again.skipped) == (0, 2)

"""The results database: SQLite (stdlib ``sqlite3``), one row per *finished* run.

Tables::

    runs(run_id PK, suite, dataset, model, config JSON, config_hash, seed, grid_point JSON,
         ctrkit_version, git_commit, library_versions JSON, cpu_model, threads, status,
         error, started_at, finished_at, run_dir,
         parameters, model_bytes, train_seconds, train_samples_per_sec, eval_samples_per_sec)
    metrics(run_id, split, task, metric, value)   PK (run_id, split, task, metric)

A run's row and its metrics are written in one ``BEGIN IMMEDIATE ... COMMIT`` transaction, and only
when the run has ended: a crash leaves either the whole run or nothing. ``status`` is ``finished``
or ``failed`` (a failed run is re-run on resume and replaced).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    config TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    grid_point TEXT,
    ctrkit_version TEXT,
    git_commit TEXT,
    library_versions TEXT,
    cpu_model TEXT,
    threads INTEGER,
    status TEXT NOT NULL CHECK (status IN ('finished', 'failed')),
    error TEXT,
    started_at TEXT,
    finished_at TEXT,
    run_dir TEXT,
    parameters INTEGER,
    model_bytes INTEGER,
    train_seconds REAL,
    train_samples_per_sec REAL,
    eval_samples_per_sec REAL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    split TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, split, task, metric)
);
CREATE INDEX IF NOT EXISTS runs_by_suite ON runs(suite, dataset, model, config_hash);
"""

RUN_COLUMNS = (
    "run_id", "suite", "dataset", "model", "config", "config_hash", "seed", "grid_point",
    "ctrkit_version", "git_commit", "library_versions", "cpu_model", "threads", "status", "error",
    "started_at", "finished_at", "run_dir", "parameters", "model_bytes", "train_seconds",
    "train_samples_per_sec", "eval_samples_per_sec",
)  # fmt: skip


def db_path(url_or_path: str | Path) -> Path:
    """A file path from a path or a ``sqlite:///relative`` / ``sqlite:////absolute`` URL."""
    s = str(url_or_path)
    if s.startswith("sqlite:///"):
        return Path(s[len("sqlite:///") :])
    if "://" in s:
        raise ValueError(f"unsupported database URL '{s}' (only sqlite:///path)")
    return Path(s)


def flatten_metrics(metrics: dict[str, Any]) -> list[tuple[str, str, str, float]]:
    """``(split, task, metric, value)`` rows of a ``metrics.json`` mapping (numeric leaves only)."""
    rows = []
    for split in ("train", "valid", "test"):
        for task, m in (metrics.get(split) or {}).items():
            if not isinstance(m, dict):
                continue
            for name, v in m.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append((split, task, name, float(v)))
    return rows


class ResultsDB:
    def __init__(self, url_or_path: str | Path):
        self.path = db_path(url_or_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN ... COMMIT) below.
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        with self.transaction() as c:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "ResultsDB":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def record(self, run: dict[str, Any], metrics: list[tuple[str, str, str, float]]) -> None:
        """Insert (or replace) one ended run and its metrics atomically."""
        row = {k: run.get(k) for k in RUN_COLUMNS}
        for k in ("config", "grid_point", "library_versions"):
            if row[k] is not None and not isinstance(row[k], str):
                row[k] = json.dumps(row[k], sort_keys=True)
        cols = ", ".join(RUN_COLUMNS)
        marks = ", ".join("?" for _ in RUN_COLUMNS)
        with self.transaction() as c:
            c.execute("DELETE FROM metrics WHERE run_id = ?", (row["run_id"],))
            c.execute("DELETE FROM runs WHERE run_id = ?", (row["run_id"],))
            c.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", [row[k] for k in RUN_COLUMNS])
            c.executemany(
                "INSERT INTO metrics (run_id, split, task, metric, value) VALUES (?, ?, ?, ?, ?)",
                [(row["run_id"], *m) for m in metrics],
            )

    def status(self) -> dict[str, str]:
        """run_id -> status of every recorded run."""
        return dict(self.conn.execute("SELECT run_id, status FROM runs").fetchall())

    def finished_ids(self) -> set[str]:
        return {r for r, s in self.status().items() if s == "finished"}

    def runs(self, suite: str | None = None, status: str | None = "finished") -> list[dict[str, Any]]:
        q, args = "SELECT * FROM runs WHERE 1=1", []
        if suite is not None:
            q += " AND suite = ?"
            args.append(suite)
        if status is not None:
            q += " AND status = ?"
            args.append(status)
        cur = self.conn.execute(q + " ORDER BY dataset, model, config_hash, seed", args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def metrics(self, run_ids: list[str] | None = None) -> dict[str, dict[tuple[str, str, str], float]]:
        """run_id -> {(split, task, metric): value}."""
        out: dict[str, dict[tuple[str, str, str], float]] = {}
        for rid, split, task, metric, value in self.conn.execute("SELECT run_id, split, task, metric, value FROM metrics"):
            if run_ids is None or rid in run_ids:
                out.setdefault(rid, {})[(split, task, metric)] = value
        return out

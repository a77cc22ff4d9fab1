"""The results database: one row per *ended* run, in any database SQLAlchemy can reach.

By default a SQLite file in the benchmark directory; a PostgreSQL URL (``postgresql://user@host/db``,
driver from the ``postgres`` extra) lets several machines record into one database. A bare path
still works and means a SQLite file.

Tables::

    runs(run_id PK, suite, dataset, model, config JSON, config_hash, seed, grid_point JSON,
         ctrkit_version, git_commit, library_versions JSON, cpu_model, threads, status,
         error, started_at, finished_at, run_dir,
         parameters, model_bytes, train_seconds, train_samples_per_sec, eval_samples_per_sec,
         peak_rss_mb, infer_single_ms, infer_batch_rows_per_sec, study, trial,
         data_fingerprint, data_checksums JSON)
    metrics(run_id, split, task, metric, value)   PK (run_id, split, task, metric)
    evaluations(run_id, epoch, split, task, metric, value)   PK (run_id, epoch, split, task, metric)

``metrics`` holds a run's final metrics (validation of the best epoch, test); ``evaluations`` one
row per metric of every evaluation during training (``split`` ``valid``; the epoch's mean
training loss as split ``train``, task ``all``, metric ``loss``). ``data_checksums`` maps each
split to the sha256 of its source file and ``data_fingerprint`` is the store's fingerprint (schema,
encoders' settings and those checksums): two runs with equal fingerprints saw the same data.

A run's row and its metrics are written in one transaction, and only when the run has ended: a
crash leaves either the whole run or nothing. ``status`` is ``finished``, ``failed`` (re-run on
resume and replaced) or ``pruned`` (a tuning trial stopped early by the pruner; its metrics are the
validation metrics of its last evaluation). ``study``/``trial`` name the Optuna study and trial
number of a tuning run (NULL for suite runs).

Databases written before the cost, study and trial columns existed are migrated when opened
(``ALTER TABLE ADD COLUMN``; on SQLite the ``runs`` table is also rebuilt once so that its status
check admits ``pruned``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.schema import CreateTable

from ctrkit.errors import CtrkitError

STATUSES = ("finished", "failed", "pruned")

_metadata = MetaData()
runs_table = Table(
    "runs",
    _metadata,
    Column("run_id", Text, primary_key=True),
    Column("suite", Text, nullable=False),
    Column("dataset", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("config_hash", Text, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("grid_point", Text),
    Column("ctrkit_version", Text),
    Column("git_commit", Text),
    Column("library_versions", Text),
    Column("cpu_model", Text),
    Column("threads", Integer),
    Column("status", Text, nullable=False),
    Column("error", Text),
    Column("started_at", Text),
    Column("finished_at", Text),
    Column("run_dir", Text),
    Column("parameters", BigInteger),
    Column("model_bytes", BigInteger),
    Column("train_seconds", Double),
    Column("train_samples_per_sec", Double),
    Column("eval_samples_per_sec", Double),
    # Cost of the trained model (measured by ctrkit.bench.runner.measure_costs).
    Column("peak_rss_mb", Double),
    Column("infer_single_ms", Double),
    Column("infer_batch_rows_per_sec", Double),
    # Tuning runs: the Optuna study and trial number (NULL for suite runs).
    Column("study", Text),
    Column("trial", Integer),
    # What data the run saw (from its store's manifest).
    Column("data_fingerprint", Text),
    Column("data_checksums", Text),
    CheckConstraint("status IN ('finished', 'failed', 'pruned')", name="runs_status"),
)
Index("runs_by_suite", runs_table.c.suite, runs_table.c.dataset, runs_table.c.model, runs_table.c.config_hash)
metrics_table = Table(
    "metrics",
    _metadata,
    Column("run_id", Text, ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("split", Text, nullable=False),
    Column("task", Text, nullable=False),
    Column("metric", Text, nullable=False),
    Column("value", Double),
    PrimaryKeyConstraint("run_id", "split", "task", "metric"),
)

evaluations_table = Table(
    "evaluations",
    _metadata,
    Column("run_id", Text, ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("split", Text, nullable=False),
    Column("task", Text, nullable=False),
    Column("metric", Text, nullable=False),
    Column("value", Double),
    PrimaryKeyConstraint("run_id", "epoch", "split", "task", "metric"),
)

RUN_COLUMNS = tuple(c.name for c in runs_table.columns)
# Columns added after the first release of the database: added to older databases when opened.
ADDED_COLUMNS = ("peak_rss_mb", "infer_single_ms", "infer_batch_rows_per_sec", "study", "trial", "data_fingerprint", "data_checksums")
_JSON_COLUMNS = ("config", "grid_point", "library_versions", "data_checksums")
# Any constant: the PostgreSQL advisory lock that serialises schema creation and migration.
_SCHEMA_LOCK = 7_406_115_311


class ResultsDBError(CtrkitError):
    """The results database cannot be used (wrong URL, a table of another program, ...)."""


def db_url(url_or_path: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a bare path (a SQLite file, made absolute).

    ``postgresql://`` and ``postgres://`` URLs without a driver get ``+psycopg`` (the driver of the
    ``postgres`` extra).
    """
    s = str(url_or_path)
    if "://" not in s:
        return f"sqlite:///{Path(s).expanduser().resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if s.startswith(prefix):
            return "postgresql+psycopg://" + s[len(prefix) :]
    try:
        make_url(s)
    except ArgumentError as e:
        raise ResultsDBError(f"not a database URL: '{s}' ({e})") from None
    return s


def is_sqlite(url: str) -> bool:
    return make_url(db_url(url)).get_backend_name() == "sqlite"


def db_path(url_or_path: str | Path) -> Path:
    """The file of a SQLite database given as a path or a ``sqlite:///`` URL.

    Other databases have no file: for them this raises ``ValueError`` (open them with
    :class:`ResultsDB`).
    """
    url = make_url(db_url(url_or_path))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise ValueError(f"'{url_or_path}' is not a SQLite file; open it with ResultsDB")
    return Path(url.database)


def safe_url(url: str) -> str:
    """The URL with its password hidden (for messages and files)."""
    return make_url(db_url(url)).render_as_string(hide_password=True)


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


def flatten_history(history: list[dict[str, Any]]) -> list[tuple[int, str, str, str, float]]:
    """``(epoch, split, task, metric, value)`` rows of a run's ``history.json`` (one entry per
    evaluation): each entry's metrics as :func:`flatten_metrics` reads them, and the epoch's
    training loss."""
    rows = []
    for i, entry in enumerate(history, start=1):
        epoch = int(entry.get("epoch", i))
        loss = entry.get("train_loss")
        if isinstance(loss, (int, float)) and not isinstance(loss, bool):
            rows.append((epoch, "train", "all", "loss", float(loss)))
        rows.extend((epoch, *row) for row in flatten_metrics(entry))
    return rows


def check_driver(url: str) -> None:
    """A clear error when the PostgreSQL driver (the ``postgres`` extra) is not installed."""
    u = make_url(db_url(url))
    if u.get_backend_name() == "postgresql" and u.get_driver_name() == "psycopg":
        import importlib.util

        if importlib.util.find_spec("psycopg") is None:
            raise ResultsDBError(f"{safe_url(url)}: PostgreSQL needs its driver: pip install 'ctrkit[postgres]'")


def make_engine(url: str) -> Engine:
    """An engine with ctrkit's settings: on SQLite, WAL, foreign keys, fsync on commit, a long
    busy timeout (several worker processes write one file), and write transactions that take the
    write lock at ``BEGIN`` (``BEGIN IMMEDIATE``), which pysqlite cannot do by itself."""
    url = db_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        check_driver(url)
        return create_engine(url, pool_pre_ping=True)
    path = db_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are ours (the "begin" hook below), not pysqlite's implicit ones.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A deferred BEGIN that later writes can fail at once with "database is locked" when
        # another process holds the write lock; IMMEDIATE waits for it (busy timeout) instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("ctrkit_write") else "BEGIN")

    return engine


class ResultsDB:
    """The results database at ``url_or_path`` (created or migrated when opened)."""

    def __init__(self, url_or_path: str | Path):
        self.url = db_url(url_or_path)
        self.path: Path | None = db_path(self.url) if is_sqlite(self.url) else None
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        try:
            self._setup()
        except OperationalError as e:
            self.engine.dispose()
            raise ResultsDBError(f"results database {safe_url(self.url)}: {e.orig or e}") from None
        except BaseException:
            self.engine.dispose()
            raise

    # ------------------------------------------------------------ connection
    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "ResultsDB":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultsDB({safe_url(self.url)!r})"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back on any exception."""
        with self.engine.connect() as conn:
            conn.execution_options(ctrkit_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # ------------------------------------------------------------ schema
    def _setup(self) -> None:
        with self.transaction() as c:
            if self.dialect == "postgresql":
                # Two workers opening a new database at once must not both create the tables.
                c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
            _metadata.create_all(c)
            self._add_missing_columns(c)
            rebuild = self.dialect == "sqlite" and self._sqlite_status_check_is_old(c)
        if rebuild:
            self._rebuild_sqlite_runs()

    def _add_missing_columns(self, c: Connection) -> None:
        have = {col["name"] for col in inspect(c).get_columns("runs")}
        original = [n for n in RUN_COLUMNS if n not in ADDED_COLUMNS]
        lacking = [n for n in original if n not in have]
        if lacking:
            raise ResultsDBError(
                f"{safe_url(self.url)}: table 'runs' lacks column(s) {', '.join(lacking)}; "
                "it was not written by ctrkit's benchmark (use another database)"
            )
        for name in ADDED_COLUMNS:
            if name not in have:
                coltype = runs_table.c[name].type.compile(dialect=c.dialect)
                c.execute(text(f"ALTER TABLE runs ADD COLUMN {name} {coltype}"))

    @staticmethod
    def _sqlite_status_check_is_old(c: Connection) -> bool:
        sql = c.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").scalar()
        return bool(sql) and "CHECK" in sql and "'pruned'" not in sql

    def _rebuild_sqlite_runs(self) -> None:
        """Give an older SQLite ``runs`` table the current status check (SQLite cannot alter a
        check): the documented create-copy-drop-rename, in one transaction, foreign keys off so
        that dropping the old table does not cascade into ``metrics``."""
        new = runs_table.to_metadata(MetaData(), name="runs_rebuild")
        for ix in list(new.indexes):
            new.indexes.discard(ix)  # index names are global in SQLite: recreated after the rename
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA foreign_keys = OFF")  # only takes effect outside a transaction
            try:
                conn.execution_options(ctrkit_write=True)
                with conn.begin():
                    if not self._sqlite_status_check_is_old(conn):
                        return  # another process rebuilt it meanwhile
                    conn.exec_driver_sql("DROP TABLE IF EXISTS runs_rebuild")
                    conn.execute(CreateTable(new))
                    cols = ", ".join(RUN_COLUMNS)
                    conn.exec_driver_sql(f"INSERT INTO runs_rebuild ({cols}) SELECT {cols} FROM runs")
                    conn.exec_driver_sql("DROP TABLE runs")
                    conn.exec_driver_sql("ALTER TABLE runs_rebuild RENAME TO runs")
                    for ix in runs_table.indexes:
                        ix.create(conn, checkfirst=True)
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if bad:
                        raise ResultsDBError(f"{self.path}: foreign key check failed after migrating 'runs': {bad[:3]}")
            finally:
                raw.execute("PRAGMA foreign_keys = ON")

    # ------------------------------------------------------------ writes
    def record(
        self,
        run: dict[str, Any],
        metrics: list[tuple[str, str, str, float | None]],
        evaluations: list[tuple[int, str, str, str, float | None]] | None = None,
    ) -> None:
        """Insert (or replace) one ended run, its final metrics and its per-evaluation metrics
        (:func:`flatten_history` rows) atomically."""
        row = {k: run.get(k) for k in RUN_COLUMNS}
        if row["status"] not in STATUSES:
            raise ValueError(f"run status must be one of {STATUSES}, got {row['status']!r}")
        for k in _JSON_COLUMNS:
            if row[k] is not None and not isinstance(row[k], str):
                row[k] = json.dumps(row[k], sort_keys=True)
        with self.transaction() as c:
            c.execute(delete(evaluations_table).where(evaluations_table.c.run_id == row["run_id"]))
            c.execute(delete(metrics_table).where(metrics_table.c.run_id == row["run_id"]))
            c.execute(delete(runs_table).where(runs_table.c.run_id == row["run_id"]))
            c.execute(runs_table.insert(), row)
            if metrics:
                c.execute(
                    metrics_table.insert(),
                    [{"run_id": row["run_id"], "split": s, "task": t, "metric": m, "value": v} for s, t, m, v in metrics],
                )
            if evaluations:
                c.execute(
                    evaluations_table.insert(),
                    [{"run_id": row["run_id"], "epoch": e, "split": s, "task": t, "metric": m, "value": v} for e, s, t, m, v in evaluations],
                )

    # ------------------------------------------------------------ reads
    def status(self) -> dict[str, str]:
        """run_id -> status of every recorded run."""
        with self._read() as c:
            return {r: s for r, s in c.execute(select(runs_table.c.run_id, runs_table.c.status))}

    def finished_ids(self) -> set[str]:
        return {r for r, s in self.status().items() if s == "finished"}

    def runs(self, suite: str | None = None, status: str | None = "finished", study: str | None = None) -> list[dict[str, Any]]:
        """Recorded runs as dicts (JSON columns as strings), optionally of one suite/status/study."""
        q = select(runs_table)
        if suite is not None:
            q = q.where(runs_table.c.suite == suite)
        if status is not None:
            q = q.where(runs_table.c.status == status)
        if study is not None:
            q = q.where(runs_table.c.study == study)
        c_ = runs_table.c
        q = q.order_by(c_.dataset, c_.model, c_.config_hash, c_.seed, c_.trial)
        with self._read() as c:
            return [dict(r._mapping) for r in c.execute(q)]

    def metrics(self, run_ids: list[str] | None = None) -> dict[str, dict[tuple[str, str, str], float]]:
        """run_id -> {(split, task, metric): value}."""
        wanted = set(run_ids) if run_ids is not None else None
        out: dict[str, dict[tuple[str, str, str], float]] = {}
        m = metrics_table.c
        with self._read() as c:
            for rid, split, task, metric, value in c.execute(select(m.run_id, m.split, m.task, m.metric, m.value)):
                if wanted is None or rid in wanted:
                    out.setdefault(rid, {})[(split, task, metric)] = value
        return out

    def evaluations(self, run_ids: list[str] | None = None) -> dict[str, list[tuple[int, str, str, str, float | None]]]:
        """run_id -> its ``(epoch, split, task, metric, value)`` rows, in epoch order."""
        wanted = set(run_ids) if run_ids is not None else None
        out: dict[str, list[tuple[int, str, str, str, float | None]]] = {}
        e = evaluations_table.c
        q = select(e.run_id, e.epoch, e.split, e.task, e.metric, e.value).order_by(e.run_id, e.epoch, e.split, e.task, e.metric)
        with self._read() as c:
            for rid, epoch, split, task, metric, value in c.execute(q):
                if wanted is None or rid in wanted:
                    out.setdefault(rid, []).append((epoch, split, task, metric, value))
        return out

    def count(self, table: str = "runs") -> int:
        """Rows in ``runs``, ``metrics`` or ``evaluations``."""
        t = {"runs": runs_table, "metrics": metrics_table, "evaluations": evaluations_table}[table]
        with self._read() as c:
            return int(c.execute(select(func.count()).select_from(t)).scalar() or 0)


__all__ = ["ADDED_COLUMNS", "RUN_COLUMNS", "STATUSES", "ResultsDB", "ResultsDBError", "check_driver", "db_path", "db_url", "flatten_history", "flatten_metrics", "is_sqlite", "safe_url"]

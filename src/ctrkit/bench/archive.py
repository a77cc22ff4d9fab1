"""A plain-text copy of a suite's results that can travel with the code: ``ARCHIVE/runs.jsonl``
and ``ARCHIVE/sessions.jsonl``.

A suite of hundreds of runs outlives the machine it started on: a rented machine is returned, a
laptop is reinstalled, a checkout is cloned afresh. The results database and the benchmark
directory stay behind. An archive is a directory of two text files that holds everything the
leaderboard and ``--resume`` need, small enough to commit beside the suite or copy by hand, and
friendly to ``git diff`` (one run per line, sorted, stable formatting):

``runs.jsonl``
    One JSON object per recorded run of the suite, sorted by ``run_id``: every column of the
    ``runs`` table (JSON columns decoded), ``metrics``, a sorted list of
    ``[split, task, metric, value]``, and ``evaluations``, a list of
    ``[epoch, split, task, metric, value]`` (every evaluation during training). Run ids do not depend on where the data or the benchmark
    directory lie (see :func:`ctrkit.bench.suite.config_hash`), so they match on another machine.
``sessions.jsonl``
    The lines of the benchmark directory's ``sessions.jsonl`` (:mod:`ctrkit.bench.sessions`), so
    the suite's wall time counts the sittings of every machine.

``ctrkit bench SUITE --archive DIR`` keeps an archive up to date after every recorded run; with
``--resume`` it first imports the archive's runs that the database lacks. Both files are written
to a temporary file and renamed, so a kill mid-export leaves the previous archive whole.
What an archive does not hold: run directories (checkpoints, best models, logs). A run that was
part-way when its machine went away starts again from its first epoch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctrkit.bench.db import _JSON_COLUMNS, RUN_COLUMNS, STATUSES, ResultsDB
from ctrkit.bench.sessions import FILE as SESSIONS_FILE
from ctrkit.errors import CtrkitError
from ctrkit.train.checkpoint import atomic_write_text

RUNS_FILE = "runs.jsonl"
_REQUIRED = ("run_id", "suite", "dataset", "model", "config", "config_hash", "seed", "status")


class ArchiveError(CtrkitError):
    """An archive file that cannot be read (names the file, line and field)."""


@dataclass(frozen=True)
class ImportCounts:
    imported: int  # runs written into the database
    kept: int  # runs the database already held as finished (or held and the archive did not finish)
    session_lines: int  # sessions.jsonl lines added to the benchmark directory


def _number(v: Any) -> Any:
    # NaN is not JSON: a metric that could not be computed is kept as null.
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _encode_run(row: dict[str, Any], metrics: dict[tuple[str, str, str], float], evaluations: list[tuple[Any, ...]]) -> str:
    out: dict[str, Any] = {}
    for k in RUN_COLUMNS:
        v = row.get(k)
        if k in _JSON_COLUMNS and isinstance(v, str):
            v = json.loads(v)
        out[k] = v
    out["metrics"] = [[s, t, m, _number(v)] for (s, t, m), v in sorted(metrics.items())]
    out["evaluations"] = [[e, s, t, m, _number(v)] for e, s, t, m, v in evaluations]
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def _session_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    # A torn last line (a kill mid-append) is left out: read_sessions would skip it anyway.
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            json.loads(raw)
        except ValueError:
            continue
        lines.append(raw)
    return lines


def _union(first: list[str], second: list[str]) -> list[str]:
    """``first``, then the lines of ``second`` it lacks, each once, in order."""
    return list(dict.fromkeys(first + second))


def export_archive(database: ResultsDB, bench_dir: str | Path, archive: str | Path, *, suite: str) -> int:
    """Write ``archive/runs.jsonl`` (every run of ``suite`` in ``database``) and merge the
    benchmark directory's sessions into ``archive/sessions.jsonl``. Returns the number of runs.

    Sessions already in the archive are kept (they may come from other machines); runs are the
    database's, which holds everything an earlier export wrote once it has been imported.
    """
    archive = Path(archive)
    archive.mkdir(parents=True, exist_ok=True)
    rows = database.runs(suite=suite, status=None)
    ids = [r["run_id"] for r in rows]
    metrics, evaluations = database.metrics(ids), database.evaluations(ids)
    lines = sorted(_encode_run(r, metrics.get(r["run_id"], {}), evaluations.get(r["run_id"], [])) for r in rows)
    atomic_write_text("".join(line + "\n" for line in lines), archive / RUNS_FILE)
    sessions = _union(_session_lines(archive / SESSIONS_FILE), _session_lines(Path(bench_dir) / SESSIONS_FILE))
    atomic_write_text("".join(line + "\n" for line in sessions), archive / SESSIONS_FILE)
    return len(lines)


def _rows(obj: dict[str, Any], field: str, keys: tuple[type, ...], shape: str, where: str) -> list[tuple[Any, ...]]:
    """``obj[field]`` as tuples: each item a list of ``keys`` (by type) and a number or null."""
    out = []
    for i, m in enumerate(obj.get(field) or []):
        ok = isinstance(m, list) and len(m) == len(keys) + 1 and all(isinstance(x, k) for x, k in zip(m, keys))
        v = m[-1] if ok else None
        if not ok or not (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))):
            raise ArchiveError(f"{where}: field '{field}', item {i}: expected {shape}")
        out.append((*m[:-1], None if v is None else float(v)))
    return out


ArchivedRun = tuple[dict[str, Any], list[tuple[str, str, str, float | None]], list[tuple[int, str, str, str, float | None]]]


def read_archive_runs(archive: str | Path, *, suite: str | None = None) -> list[ArchivedRun]:
    """The runs of ``archive/runs.jsonl`` (optionally of one suite) as ``(row, metrics,
    evaluations)`` ready for :meth:`ResultsDB.record`. Raises :class:`ArchiveError` naming the file, line and
    field of anything malformed."""
    path = Path(archive) / RUNS_FILE
    if not path.exists():
        return []
    out = []
    for no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as e:
            raise ArchiveError(f"{path}, line {no}: not JSON ({e})") from None
        if not isinstance(obj, dict):
            raise ArchiveError(f"{path}, line {no}: expected a JSON object")
        for k in _REQUIRED:
            if obj.get(k) is None:
                raise ArchiveError(f"{path}, line {no}: field '{k}' is missing")
        if obj["status"] not in STATUSES:
            raise ArchiveError(f"{path}, line {no}: field 'status' must be one of {', '.join(STATUSES)}, got {obj['status']!r}")
        unknown = set(obj) - set(RUN_COLUMNS) - {"metrics", "evaluations"}
        if unknown:
            raise ArchiveError(f"{path}, line {no}: unknown field '{sorted(unknown)[0]}' (written by a newer ctrkit?)")
        rows = _rows(obj, "metrics", (str, str, str), "[split, task, metric, number]", f"{path}, line {no}")
        evals = _rows(obj, "evaluations", (int, str, str, str), "[epoch, split, task, metric, number]", f"{path}, line {no}")
        if suite is None or obj["suite"] == suite:
            out.append(({k: obj.get(k) for k in RUN_COLUMNS}, rows, evals))
    return out


def import_archive(archive: str | Path, database: ResultsDB, bench_dir: str | Path, *, suite: str) -> ImportCounts:
    """Record the archive's runs of ``suite`` that ``database`` lacks, and add the archive's
    session lines to ``bench_dir/sessions.jsonl``.

    A run the database holds as finished is kept as it is; a run it holds as failed or pruned is
    replaced by the archive's when that one finished. Each run is written in its own transaction
    (:meth:`ResultsDB.record`). The whole archive is read and checked before anything is written.
    """
    runs = read_archive_runs(archive, suite=suite)
    status = database.status()
    imported = kept = 0
    for row, metrics, evaluations in runs:
        have = status.get(row["run_id"])
        if have == "finished" or (have is not None and row["status"] != "finished"):
            kept += 1
            continue
        database.record(row, metrics, evaluations)
        imported += 1
    bench = Path(bench_dir) / SESSIONS_FILE
    ours = _session_lines(bench)
    merged = _union(ours, _session_lines(Path(archive) / SESSIONS_FILE))
    if len(merged) > len(ours):
        atomic_write_text("".join(line + "\n" for line in merged), bench)
    return ImportCounts(imported, kept, len(merged) - len(ours))


__all__ = ["RUNS_FILE", "ArchiveError", "ArchivedRun", "ImportCounts", "export_archive", "import_archive", "read_archive_runs"]

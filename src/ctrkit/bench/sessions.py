"""How long a suite has been running, across interruptions: ``BENCH_DIR/sessions.jsonl``.

A long suite is often run in several sittings (``ctrkit bench --resume`` after a kill, a reboot,
the end of a shift). The wall time of the suite is then the sum of the sittings, not the span from
its first run to its last. Each ``ctrkit bench`` invocation is one *session*: it appends a start
line, a heartbeat line every ``interval`` seconds while it runs, a line per recorded run and an end
line when it returns. A session killed without its end line counts up to its last line, so a
sitting's wall time is known to within one heartbeat. Sessions that overlap (two invocations on
one suite at once) count once: the wall time is the length of the union of their intervals.

Lines are small JSON objects appended with one ``write`` (atomic for lines this short on local file
systems); a torn last line from a crash is skipped by :func:`read_sessions`.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FILE = "sessions.jsonl"
#: Seconds between heartbeats: the most a killed session's wall time can be under-counted by.
HEARTBEAT_SECONDS = 60.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def duration(seconds: float) -> str:
    """``"3.2 h"``, ``"14 min"`` or ``"< 1 min"``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else "< 1 min"


class SessionLog:
    """The current session's lines in ``bench_dir/sessions.jsonl``; use as a context manager.

    ``workers`` and ``threads`` (per worker) are recorded so a reader can tell sittings with
    different budgets apart.
    """

    def __init__(self, bench_dir: str | Path, *, workers: int, threads: int, pending: int, total: int,
                 interval: float = HEARTBEAT_SECONDS) -> None:  # fmt: skip
        self.path = Path(bench_dir) / FILE
        self.session = uuid.uuid4().hex[:12]
        self.interval = interval
        self._start = {"event": "start", "workers": workers, "threads": threads, "pending": pending, "total": total}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _append(self, fields: dict[str, Any]) -> None:
        line = json.dumps({"session": self.session, "at": _iso(_now()), **fields}) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def __enter__(self) -> "SessionLog":
        self._append(self._start)
        self._thread = threading.Thread(target=self._beat, name="ctrkit-bench-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self._append({"event": "alive"})

    def run_recorded(self, run_id: str, status: str) -> None:
        """One line per run the session records (finished, failed or pruned)."""
        self._append({"event": "run", "run_id": run_id, "status": status})

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._append({"event": "end", "interrupted": exc_type is not None})


@dataclass(frozen=True)
class Session:
    session: str
    started: datetime
    last_seen: datetime
    ended: bool  # False: killed (or still running); its wall time counts up to its last line
    workers: int
    threads: int
    runs_recorded: int

    @property
    def seconds(self) -> float:
        return max(0.0, (self.last_seen - self.started).total_seconds())


@dataclass(frozen=True)
class SessionSummary:
    sessions: list[Session]

    @property
    def wall_seconds(self) -> float:
        """Wall time during which at least one session ran: the length of the union of the
        sessions' intervals (two invocations may work on one suite at once, e.g. on two machines
        sharing a database, and must not count twice)."""
        total, end = 0.0, None
        for s in sorted(self.sessions, key=lambda s: s.started):
            if end is None or s.started >= end:
                total += s.seconds
                end = s.last_seen
            elif s.last_seen > end:
                total += (s.last_seen - end).total_seconds()
                end = s.last_seen
        return total

    def describe(self) -> str:
        """One line for a report, e.g. ``wall time 12.4 h over 5 sessions (2 workers x 1 thread)``."""
        n = len(self.sessions)
        budgets = sorted({(s.workers, s.threads) for s in self.sessions})
        budget = ", ".join(f"{w} worker{'s' if w != 1 else ''} x {t} thread{'s' if t != 1 else ''}" for w, t in budgets)
        first = min(s.started for s in self.sessions).strftime("%Y-%m-%d %H:%M")
        last = max(s.last_seen for s in self.sessions).strftime("%Y-%m-%d %H:%M")
        return (f"Wall time {duration(self.wall_seconds)} over {n} session{'s' if n != 1 else ''} ({budget}), "
                f"between {first} and {last} UTC; sessions ended by a kill count to their last heartbeat.")  # fmt: skip


def read_sessions(bench_dir: str | Path) -> SessionSummary | None:
    """The sessions recorded in ``bench_dir/sessions.jsonl`` (None when there is no such file or
    it holds no session start)."""
    path = Path(bench_dir) / FILE
    if not path.exists():
        return None
    acc: dict[str, dict[str, Any]] = {}
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            line = json.loads(raw)
            at = datetime.fromisoformat(line["at"])
            sid = str(line["session"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn line from a crash mid-write
        s = acc.get(sid)
        if line.get("event") == "start":
            acc[sid] = s = {"started": at, "last": at, "ended": False, "runs": 0,
                            "workers": int(line.get("workers", 1)), "threads": int(line.get("threads", 1))}  # fmt: skip
            continue
        if s is None:
            continue  # lines of a session whose start line was lost
        s["last"] = max(s["last"], at)
        if line.get("event") == "run":
            s["runs"] += 1
        elif line.get("event") == "end":
            s["ended"] = True
    if not acc:
        return None
    sessions = [
        Session(sid, v["started"], v["last"], v["ended"], v["workers"], v["threads"], v["runs"])
        for sid, v in sorted(acc.items(), key=lambda kv: kv[1]["started"])
    ]
    return SessionSummary(sessions)


class TimeLeft:
    """Training time left in a suite, from the runs finished so far.

    A suite's runs differ by orders of magnitude (a logistic regression trains in a minute, AFN
    for an hour), so a rate over runs says little. Runs go seed-major: by the time most runs are
    pending, each configuration usually has a finished seed. A pending run is estimated by the
    median training time of its configuration's finished runs, else by the median over all
    finished runs. Training time excludes evaluation, so the estimate is a lower bound.
    """

    def __init__(self, pending: dict[str, str], workers: int) -> None:
        self.pending = dict(pending)  # run_id -> config_hash, not yet recorded
        self.workers = max(1, workers)
        self.by_config: dict[str, list[float]] = {}

    def finished(self, config_hash: str, train_seconds: float | None) -> None:
        """A finished run's training time (from the database or a run just recorded)."""
        if train_seconds is not None and train_seconds > 0:
            self.by_config.setdefault(config_hash, []).append(float(train_seconds))

    def recorded(self, run_id: str) -> None:
        self.pending.pop(run_id, None)

    def estimate(self, config_hash: str) -> float | None:
        """Training seconds of one run of ``config_hash``: the median of its finished runs, else
        the median over all finished runs; None before any run has finished."""
        if config_hash in self.by_config:
            return statistics.median(self.by_config[config_hash])
        if not self.by_config:
            return None
        return statistics.median(t for times in self.by_config.values() for t in times)

    def seconds(self) -> float | None:
        """Estimated training seconds left (spread over the workers); None before any run ends."""
        if not self.by_config:
            return None
        total = sum(self.estimate(h) or 0.0 for h in self.pending.values())
        return total / self.workers

    def describe(self) -> str:
        s = self.seconds()
        if s is None or not self.pending:
            return ""
        return f"~{duration(s)} training left"


__all__ = ["FILE", "HEARTBEAT_SECONDS", "Session", "SessionLog", "SessionSummary", "TimeLeft", "read_sessions"]

"""The suite's wall time across sittings: sessions.jsonl written and read back."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from ctrkit.bench.sessions import FILE, SessionLog, TimeLeft, read_sessions


def test_a_session_logs_start_heartbeats_runs_and_end(tmp_path):
    with SessionLog(tmp_path, workers=2, threads=1, pending=3, total=5, interval=0.05) as log:
        log.run_recorded("a", "finished")
        time.sleep(0.2)
        log.run_recorded("b", "failed")
    lines = [json.loads(x) for x in (tmp_path / FILE).read_text().splitlines()]
    events = [x["event"] for x in lines]
    assert events[0] == "start" and events[-1] == "end" and events.count("run") == 2
    assert events.count("alive") >= 2  # heartbeats while it ran
    assert len({x["session"] for x in lines}) == 1
    assert lines[0]["workers"] == 2 and lines[0]["pending"] == 3 and lines[-1]["interrupted"] is False
    (s,) = read_sessions(tmp_path).sessions
    assert s.ended and s.runs_recorded == 2 and (s.workers, s.threads) == (2, 1)


def test_an_exception_marks_the_session_interrupted(tmp_path):
    with pytest.raises(RuntimeError):
        with SessionLog(tmp_path, workers=1, threads=2, pending=1, total=1):
            raise RuntimeError("boom")
    last = json.loads((tmp_path / FILE).read_text().splitlines()[-1])
    assert last["event"] == "end" and last["interrupted"] is True


def _line(session: str, at: datetime, event: str, **kw) -> str:
    return json.dumps({"session": session, "at": at.isoformat(timespec="seconds"), "event": event, **kw})


def test_wall_time_sums_sessions_killed_ones_to_their_last_line(tmp_path):
    t0 = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)
    rows = [
        _line("s1", t0, "start", workers=2, threads=1, pending=10, total=10),
        _line("s1", t0 + timedelta(minutes=30), "run", run_id="r1", status="finished"),
        _line("s1", t0 + timedelta(hours=2), "alive"),  # killed after this heartbeat
        _line("s2", t0 + timedelta(days=1), "start", workers=2, threads=1, pending=9, total=10),
        _line("s2", t0 + timedelta(days=1, hours=1), "end", interrupted=False),
        '{"session": "s2", "at": "2026-01-02T09:3',  # a torn last line from a crash
    ]
    (tmp_path / FILE).write_text("\n".join(rows) + "\n")
    summary = read_sessions(tmp_path)
    assert summary is not None
    s1, s2 = summary.sessions
    assert not s1.ended and s2.ended and s1.runs_recorded == 1
    assert summary.wall_seconds == pytest.approx(3 * 3600)
    text = summary.describe()
    assert text.startswith("Wall time 3.0 h over 2 sessions (2 workers x 1 thread)")
    assert "2026-01-01 08:00" in text and "2026-01-02 09:00" in text


def test_overlapping_sessions_count_once(tmp_path):
    t0 = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)
    rows = [
        _line("a", t0, "start", workers=1, threads=1, pending=4, total=4),
        _line("b", t0 + timedelta(hours=1), "start", workers=1, threads=1, pending=2, total=2),
        _line("a", t0 + timedelta(hours=2), "end", interrupted=False),
        _line("b", t0 + timedelta(hours=3), "end", interrupted=False),
        _line("c", t0 + timedelta(hours=1, minutes=30), "start", workers=1, threads=1, pending=1, total=1),
        _line("c", t0 + timedelta(hours=1, minutes=45), "end", interrupted=False),
        _line("d", t0 + timedelta(hours=5), "start", workers=2, threads=1, pending=1, total=1),
        _line("d", t0 + timedelta(hours=6), "alive"),
    ]
    (tmp_path / FILE).write_text("\n".join(rows) + "\n")
    summary = read_sessions(tmp_path)
    assert summary is not None and len(summary.sessions) == 4
    assert summary.wall_seconds == pytest.approx(4 * 3600)  # 08:00-11:00 and 13:00-14:00


def test_no_file_or_no_start_gives_none(tmp_path):
    assert read_sessions(tmp_path) is None
    (tmp_path / FILE).write_text(_line("x", datetime.now(timezone.utc), "alive") + "\n")
    assert read_sessions(tmp_path) is None


def test_time_left_uses_each_configs_own_runs_first():
    left = TimeLeft({"a2": "A", "a3": "A", "b2": "B", "c1": "C"}, workers=2)
    assert left.seconds() is None and left.describe() == ""
    left.finished("A", 100.0)
    left.finished("A", 300.0)  # median 200 for A's pending seeds
    left.finished("B", 4000.0)
    left.finished("X", None)  # no training time recorded: ignored
    # A: 2 x 200; B: 4000; C unseen -> median of all finished (300)
    assert left.seconds() == pytest.approx((200 + 200 + 4000 + 300) / 2)
    left.recorded("b2")
    assert left.seconds() == pytest.approx((200 + 200 + 300) / 2)
    assert left.describe() == "~6 min training left"
    assert TimeLeft({}, 1).describe() == ""
    left.finished("C", 7200.0 * 2)
    assert left.describe().endswith("h training left")

"""A suite carried to another benchmark directory through its archive (runs.jsonl, sessions.jsonl),
run ids that do not depend on where the data lies, and --stop-after."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from ctrkit.bench.archive import ArchiveError, export_archive, import_archive, read_archive_runs
from ctrkit.bench.db import ResultsDB
from ctrkit.bench.runner import ESTIMATE_MARGIN, RUN_OVERHEAD_SECONDS, next_run, run_suite
from ctrkit.bench.sessions import TimeLeft, read_sessions
from ctrkit.bench.suite import load_suite
from ctrkit.commands.bench import parse_duration
from ctrkit.errors import ConfigError

from test_run import tiny_suite

MODELS = [{"name": "LR"}, {"name": "FM", "params": {"embedding_dim": 4}}]


def _run(rid: str, status: str = "finished", auc: float = 0.7) -> tuple[dict, list]:
    row = {"run_id": rid, "suite": "s", "dataset": "d", "model": "m", "config": {"model": {"name": "LR"}},
           "config_hash": "h", "seed": 1, "status": status, "train_seconds": 12.5}  # fmt: skip
    return row, ([("test", "click", "auc", auc), ("valid", "click", "logloss", None)] if status == "finished" else [])


@pytest.mark.slow
def test_an_archive_carries_a_suite_to_another_directory(tmp_path):
    """Run a suite with an archive, throw the benchmark directory away, resume elsewhere from the
    archive alone: nothing is re-run, the metrics are the same, the sessions of both count."""
    first = load_suite(tiny_suite(tmp_path / "one", seeds=(1,), models=MODELS))
    archive = tmp_path / "archive"
    s1 = run_suite(first, workers=2, threads_per_worker=1, progress=False, archive=archive)
    assert (s1.finished, s1.deferred) == (2, 0)
    lines = (archive / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 2 and lines == sorted(lines)
    assert {json.loads(x)["run_id"] for x in lines} == {r.run_id for r in first.runs}
    with ResultsDB(tmp_path / "one" / "results.sqlite") as db:
        before = db.metrics(), db.evaluations()
        rows = db.runs()
    # Every run says what data it saw and how each evaluation went.
    assert len({r["data_fingerprint"] for r in rows}) == 1 and rows[0]["data_fingerprint"]
    for r in rows:
        checksums = json.loads(r["data_checksums"])
        assert set(checksums) == {"train", "valid", "test"} and all(len(v) == 64 for v in checksums.values())
        evals = before[1][r["run_id"]]
        assert {(e, s, t, m) for e, s, t, m, _ in evals} >= {(1, "valid", "click", "auc"), (1, "train", "all", "loss")}

    # Another directory (so other store and data paths): the same run ids.
    second = load_suite(tiny_suite(tmp_path / "two", seeds=(1,), models=MODELS))
    assert [r.run_id for r in second.runs] == [r.run_id for r in first.runs]
    shutil.rmtree(tmp_path / "one")
    with pytest.raises(ConfigError, match="--resume"):
        run_suite(second, workers=1, threads_per_worker=1, progress=False, archive=archive)
    s2 = run_suite(second, resume=True, workers=1, threads_per_worker=1, progress=False, archive=archive)
    assert (s2.finished, s2.skipped, s2.failed) == (0, 2, 0)
    with ResultsDB(tmp_path / "two" / "results.sqlite") as db:
        assert (db.metrics(), db.evaluations()) == before
        assert [r["data_checksums"] for r in db.runs()] == [r["data_checksums"] for r in rows]
        assert db.finished_ids() == {r.run_id for r in first.runs}
    sessions = read_sessions(tmp_path / "two")
    assert sessions is not None and [s.runs_recorded for s in sessions.sessions] == [2, 0]
    assert read_sessions(archive) is not None and len(read_sessions(archive).sessions) == 2

    # The archive alone gives the leaderboard (no database in that directory).
    from ctrkit.bench.report import write_reports

    md = write_reports(archive).markdown.read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("|  | model")]
    assert sorted(r.split("|")[2].strip() for r in rows) == ["FM", "LR"]
    assert "over 2 sessions" in md and not (archive / "results.sqlite").exists()


def test_run_ids_ignore_paths_but_not_the_data(tmp_path):
    a = load_suite(tiny_suite(tmp_path / "a", seeds=(1,)))
    b = load_suite(tiny_suite(tmp_path / "b", seeds=(1,)))
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    assert a.runs[0].config["dataset"]["store"] != b.runs[0].config["dataset"]["store"]
    other = tiny_suite(tmp_path / "c", seeds=(1,))
    other["datasets"][0]["synthetic"]["seed"] = 6  # other synthetic data: other runs
    c = load_suite(other)
    assert not {r.run_id for r in a.runs} & {r.run_id for r in c.runs}


def test_import_keeps_finished_runs_and_replaces_failed_ones(tmp_path):
    with ResultsDB(tmp_path / "src.sqlite") as src:
        for rid, status in (("a", "finished"), ("b", "finished"), ("c", "failed"), ("d", "finished")):
            src.record(*_run(rid, status, auc=0.9))
        export_archive(src, tmp_path / "bench_src", tmp_path / "arch", suite="s")
    with ResultsDB(tmp_path / "dst.sqlite") as dst:
        dst.record(*_run("a", "finished", auc=0.6))  # kept: the database's own finished run
        dst.record(*_run("b", "failed"))  # replaced by the archive's finished run
        dst.record(*_run("c", "finished", auc=0.6))  # the archive's failed run does not replace it
        counts = import_archive(tmp_path / "arch", dst, tmp_path / "bench_dst", suite="s")
        assert (counts.imported, counts.kept) == (2, 2)
        assert dst.status() == {"a": "finished", "b": "finished", "c": "finished", "d": "finished"}
        m = dst.metrics()
        assert m["a"][("test", "click", "auc")] == 0.6 and m["b"][("test", "click", "auc")] == 0.9
        assert m["d"][("valid", "click", "logloss")] is None  # a missing value stays missing
        (row,) = [r for r in dst.runs() if r["run_id"] == "d"]
        assert row["train_seconds"] == 12.5 and json.loads(row["config"]) == {"model": {"name": "LR"}}
    assert read_archive_runs(tmp_path / "arch", suite="other") == []


def test_a_malformed_archive_names_file_line_and_field(tmp_path):
    arch = tmp_path / "arch"
    arch.mkdir()
    good = json.dumps({**_run("a")[0], "config": {}, "metrics": [["test", "click", "auc", 0.7]]})
    cases = {
        "{not json": "line 2: not JSON",
        json.dumps({**_run("b")[0], "seed": None}): "line 2: field 'seed' is missing",
        json.dumps({**_run("b")[0], "status": "done"}): "line 2: field 'status' must be one of",
        json.dumps({**_run("b")[0], "metrics": [["test", "auc", 0.7]]}): "line 2: field 'metrics', item 0",
        json.dumps({**_run("b")[0], "colour": "red"}): "line 2: unknown field 'colour'",
        json.dumps({**_run("b")[0], "evaluations": [["1", "valid", "click", "auc", 0.7]]}): "line 2: field 'evaluations', item 0",
    }
    for bad, message in cases.items():
        (arch / "runs.jsonl").write_text(good + "\n" + bad + "\n")
        with ResultsDB(tmp_path / "db.sqlite") as db, pytest.raises(ArchiveError, match=message) as e:
            import_archive(arch, db, tmp_path / "bench", suite="s")
        assert str(arch / "runs.jsonl") in str(e.value)
        with ResultsDB(tmp_path / "db.sqlite") as db:
            assert db.status() == {}  # checked before anything is written


def test_next_run_starts_only_what_fits_before_the_deadline():
    class Spec:
        def __init__(self, rid: str, h: str) -> None:
            self.run_id, self.config_hash = rid, h

    long_, short, unseen = Spec("l2", "L"), Spec("s2", "S"), Spec("u1", "U")
    left = TimeLeft({"l2": "L", "s2": "S"}, workers=1)
    assert next_run([long_, short], left, 10.0) is long_  # no estimate yet: start while time is left
    assert next_run([long_, short], left, 0.0) is None
    left.finished("L", 1000.0)
    left.finished("S", 100.0)
    need_short = 100.0 * ESTIMATE_MARGIN + RUN_OVERHEAD_SECONDS
    assert next_run([long_, short], left, None) is long_  # no deadline: suite order
    assert next_run([long_, short], left, 5000.0) is long_
    assert next_run([long_, short], left, need_short + 1) is short  # the long one is skipped, not lost
    assert next_run([long_, short], left, need_short - 1) is None
    need_unseen = 550.0 * ESTIMATE_MARGIN + RUN_OVERHEAD_SECONDS  # the median of all finished runs
    assert next_run([unseen], left, need_unseen - 1) is None
    assert next_run([unseen], left, need_unseen + 1) is unseen
    assert next_run([], left, None) is None


def test_stop_after_zero_starts_nothing_and_loses_nothing(tmp_path):
    suite = load_suite(tiny_suite(tmp_path / "b", seeds=(1,), models=MODELS))
    s = run_suite(suite, workers=1, threads_per_worker=1, progress=False, stop_after=0.0, archive=tmp_path / "arch")
    assert (s.finished, s.failed, s.deferred) == (0, 0, 2)
    with ResultsDB(tmp_path / "b" / "results.sqlite") as db:
        assert db.status() == {}
    assert (tmp_path / "arch" / "runs.jsonl").read_text() == ""
    with pytest.raises(ConfigError, match="negative"):
        run_suite(suite, resume=True, workers=1, threads_per_worker=1, progress=False, stop_after=-1.0)


def test_parse_duration():
    assert parse_duration("2h30m") == 9000
    assert parse_duration("90m") == 5400
    assert parse_duration("1.5h") == 5400
    assert parse_duration("3600s") == parse_duration("3600") == 3600
    for bad in ("soon", "2x", "h", "2h soon"):
        with pytest.raises(ConfigError, match="not a duration"):
            parse_duration(bad)


def test_cli_reports_deferred_runs(tmp_path):
    import yaml

    from ctrkit.cli import main

    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(tiny_suite(tmp_path / "b", seeds=(1,), models=MODELS)))
    res = CliRunner().invoke(main, ["bench", str(path), "--quiet", "--no-report", "--stop-after", "0s", "--archive", str(tmp_path / "arch")])
    assert res.exit_code == 0, res.output
    assert "2 runs not started within --stop-after 0s: continue with --resume" in res.output
    res = CliRunner().invoke(main, ["bench", str(path), "--quiet", "--stop-after", "later"])
    assert res.exit_code == 2 and "not a duration" in res.output

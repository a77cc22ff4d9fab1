"""``ctrkit bench`` (run a benchmark suite) and ``ctrkit report`` (write its leaderboard)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ctrkit.errors import CtrkitError


def _fail(e: Exception) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(2)


@click.command("bench")
@click.argument("suite", type=click.Path(exists=True, dir_okay=False))
@click.option("--resume", is_flag=True, help="Skip runs already recorded as finished; re-run the others.")
@click.option("--workers", default=1, show_default=True, help="Worker processes (runs in parallel).")
@click.option("--threads-per-worker", type=int, default=None, help="Torch/OMP/polars threads per worker (default: cores // workers).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Benchmark directory (default: the suite's 'out').")
@click.option("--db", default=None, help="Results database: a path or sqlite:///path (default: <out>/results.sqlite).")
@click.option("--no-report", is_flag=True, help="Do not write leaderboard.md at the end.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench_cmd(suite: str, resume: bool, workers: int, threads_per_worker: int | None, out: str | None, db: str | None, no_report: bool, quiet: bool) -> None:
    """Run every configuration x seed of a benchmark SUITE (YAML) and record the results.

    Runs execute in WORKERS processes with THREADS-PER-WORKER threads each (workers x threads must
    not exceed the cores). Kill it at any time; --resume continues without losing or repeating a run.
    """
    from ctrkit.bench.report import write_report
    from ctrkit.bench.runner import run_suite
    from ctrkit.bench.suite import load_suite

    try:
        s = load_suite(suite, out=out)
        click.echo(f"{s.name}: {len(s.runs)} runs -> {s.out}", err=True)
        summary = run_suite(s, resume=resume, workers=workers, threads_per_worker=threads_per_worker, db=db, progress=not quiet)
        click.echo(f"{summary.finished} finished, {summary.failed} failed, {summary.skipped} already done; results: {summary.db}")
        if not no_report:
            click.echo(f"leaderboard: {write_report(s.out, db=summary.db, suite=s.name)}")
    except (CtrkitError, FileNotFoundError) as e:
        _fail(e)
        return
    if summary.failed:
        sys.exit(1)


@click.command("report")
@click.argument("bench_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--db", default=None, help="Results database (default: the one the benchmark wrote).")
@click.option("--suite", default=None, help="Only this suite's runs (a database may hold several).")
def report_cmd(bench_dir: str, db: str | None, suite: str | None) -> None:
    """Write BENCH_DIR/leaderboard.md from a benchmark's results database."""
    from ctrkit.bench.report import write_report

    try:
        path = write_report(Path(bench_dir), db=db, suite=suite)
    except (CtrkitError, FileNotFoundError) as e:
        _fail(e)
        return
    click.echo(path.read_text())
    click.echo(f"written: {path}", err=True)

"""``ctrkit bench`` (run a benchmark suite), ``ctrkit tune`` (tune its models with Optuna) and
``ctrkit report`` (write its leaderboard)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ctrkit.errors import ConfigError, CtrkitError


def _fail(e: Exception) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(2)


@click.command("bench")
@click.argument("suite", type=click.Path(exists=True, dir_okay=False))
@click.option("--resume", is_flag=True, help="Skip runs already recorded as finished; re-run the others.")
@click.option("--workers", default=1, show_default=True, help="Worker processes (runs in parallel).")
@click.option("--threads-per-worker", type=int, default=None, help="Torch/OMP/polars threads per worker (default: cores // workers).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Benchmark directory (default: the suite's 'out').")
@click.option("--db", default=None, help="Results database: a path or an SQLAlchemy URL, e.g. sqlite:///path or postgresql://user@host/db (default: <out>/results.sqlite).")
@click.option("--archive", type=click.Path(file_okay=False), default=None, help="Keep a plain-text copy of the results (runs.jsonl, sessions.jsonl) in this directory, updated after every run; with --resume, first import its runs the database lacks. Carries a suite to another machine (commit it, or copy it).")
@click.option("--stop-after", "stop_after", default=None, metavar="DURATION", help="Start no run that is not expected to end within DURATION (e.g. 2h30m, 90m, 3600s; estimates come from the runs already finished), then return once the runs in flight end. The rest waits for --resume.")
@click.option("--no-report", is_flag=True, help="Do not write leaderboard.md at the end.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench_cmd(suite: str, resume: bool, workers: int, threads_per_worker: int | None, out: str | None, db: str | None, archive: str | None, stop_after: str | None, no_report: bool, quiet: bool) -> None:
    """Run every configuration x seed of a benchmark SUITE (YAML) and record the results.

    Runs execute in WORKERS processes with THREADS-PER-WORKER threads each (workers x threads must
    not exceed the cores). Kill it at any time; --resume continues without losing or repeating a run.
    Each invocation appends its start, heartbeats and end to OUT/sessions.jsonl, from which the
    leaderboard states the suite's wall time over all its sittings.
    """
    from ctrkit.bench.runner import run_suite
    from ctrkit.bench.suite import load_suite

    try:
        budget = None if stop_after is None else parse_duration(stop_after)
        s = load_suite(suite, out=out)
        click.echo(f"{s.name}: {len(s.runs)} runs -> {s.out}", err=True)
        summary = run_suite(
            s, resume=resume, workers=workers, threads_per_worker=threads_per_worker, db=db, progress=not quiet,
            archive=archive, stop_after=budget,
        )  # fmt: skip
        click.echo(f"{summary.finished} finished, {summary.failed} failed, {summary.skipped} already done; results: {summary.db}")
        if summary.deferred:
            click.echo(f"{summary.deferred} runs not started within --stop-after {stop_after}: continue with --resume")
        if archive is not None:
            click.echo(f"archive: {archive}")
        if not no_report:
            _report(s.out, db or summary.db, s.name)  # the given URL: summary.db hides its password
    except (CtrkitError, FileNotFoundError) as e:
        _fail(e)
        return
    if summary.failed:
        sys.exit(1)


def parse_duration(text: str) -> float:
    """Seconds in ``"2h30m"``, ``"90m"``, ``"1.5h"``, ``"3600s"`` or ``"3600"`` (seconds)."""
    import re

    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", t)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*[hms]", "", t).strip():
        raise ConfigError(f"--stop-after: not a duration: '{text}' (e.g. 2h30m, 90m, 3600s)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _report(out: Path, db: str, suite: str) -> None:
    from ctrkit.bench.report import write_reports

    files = write_reports(out, db=db, suite=suite)
    click.echo(f"leaderboard: {files.markdown}\nleaderboard page: {files.html}")


@click.command("tune")
@click.argument("suite", type=click.Path(exists=True, dir_okay=False))
@click.option("--study-url", default=None, help="Database of the Optuna studies: sqlite:///PATH or postgresql://user:password@host/db [default: sqlite:///<out>/optuna.sqlite]. Every machine given the same PostgreSQL URL works on the same studies.")
@click.option("--trials", type=click.IntRange(min=1), default=None, help="Trials per study, in all (all workers and machines together) [default: each search's 'trials', else 20].")
@click.option("--model", "models", multiple=True, help="Tune only this model label (repeatable) [default: every model with a 'search'].")
@click.option("--workers", default=1, show_default=True, help="Worker processes on this machine (trials in parallel).")
@click.option("--threads-per-worker", type=int, default=None, help="Torch/OMP/polars threads per worker [default: cores // workers]; workers x threads may not exceed the cores.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Benchmark directory (trial run directories, default study and results) [default: the suite's 'out'].")
@click.option("--db", default=None, help="Results database (path or SQLAlchemy URL) where every ended trial is recorded [default: the study database when it is PostgreSQL, else <out>/results.sqlite].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def tune_cmd(suite: str, study_url: str | None, trials: int | None, models: tuple[str, ...], workers: int, threads_per_worker: int | None, out: str | None, db: str | None, quiet: bool) -> None:
    """Tune the models of a benchmark SUITE that declare a 'search' space, with Optuna.

    One study per dataset x model (named SUITE-NAME/DATASET/MODEL): TPE sampling, median pruning
    on the validation AUC reported after every epoch; a trial's value is the validation AUC of its
    best epoch. A model declares its space in the suite YAML:

    \b
      search:
        trials: 30
        space:
          training.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}
          model.params.net_dropout: {low: 0.0, high: 0.5}
          model.params.hidden_units: [[64, 64], [128, 64]]

    Each study ends with exactly TRIALS trials however many workers and machines work on it: run
    the same command on several machines with one --study-url postgresql://... to share the work,
    or again after an interruption to add only the missing trials. Every ended trial (finished,
    pruned or failed) is recorded in the results database like a benchmark run.
    """
    from ctrkit.bench.suite import load_suite
    from ctrkit.bench.tune import tune_suite

    try:
        s = load_suite(suite, out=out)
        summary = tune_suite(
            s,
            study_url=study_url,
            db=db,
            trials=trials,
            models=list(models) or None,
            workers=workers,
            threads_per_worker=threads_per_worker,
            progress=not quiet,
        )
    except (CtrkitError, FileNotFoundError) as e:
        _fail(e)
        return
    for st in summary.studies:
        line = f"{st.name}: {st.complete} complete, {st.pruned} pruned, {st.failed} failed of {st.target}"
        if st.running:
            line += f", {st.running} running elsewhere"
        if st.best_value is not None:
            line += f"; best valid AUC {st.best_value:.5f} (trial {st.best_trial}, run {st.best_run_id}) {st.best_params}"
        click.echo(line)
    click.echo(f"{summary.ran_here} trials run here; study: {summary.study_url}; results: {summary.db}")
    for err in summary.errors:
        click.echo(f"error: a worker died: {err}", err=True)
    if summary.errors:
        sys.exit(1)


@click.command("report")
@click.argument("bench_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--db", default=None, help="Results database (default: the one the benchmark wrote).")
@click.option("--suite", default=None, help="Only this suite's runs (a database may hold several).")
def report_cmd(bench_dir: str, db: str | None, suite: str | None) -> None:
    """Write BENCH_DIR/leaderboard.md, a self-contained leaderboard.html (sortable table, AUC
    against cost plots with the Pareto front) and plots/*.svg from a benchmark's results database."""
    from ctrkit.bench.report import write_reports

    try:
        files = write_reports(Path(bench_dir), db=db, suite=suite)
    except (CtrkitError, FileNotFoundError) as e:
        _fail(e)
        return
    click.echo(files.markdown.read_text())
    click.echo(f"written: {files.markdown}", err=True)
    click.echo(f"written: {files.html}", err=True)

"""The leaderboard of a benchmark: ``leaderboard.md``, ``leaderboard.html`` and ``plots/*.svg``.

Per dataset, per model: the best configuration is the one with the highest *mean validation AUC*
over its seeds (test metrics never choose a configuration). For it the table shows mean ± std
(sample std, ddof=1) of test AUC and logloss over seeds, the 95% confidence interval of the mean
test AUC (Student's t, :mod:`ctrkit.bench.stats`), and its cost: median training seconds,
training samples/s, parameters, peak memory and inference latency / throughput (the last three
when the results database records them, ``-`` otherwise). Medians for cost because a timing is
disturbed upwards by whatever else ran on the machine, and one slow seed should not move the row.
Models are sorted by mean test AUC.

Significance: every model is compared with the top model by a **paired t-test over seeds** on
test AUC (two-sided, 5%), pairing runs with the same seed (only seeds both have); the p-value is
shown. Pairing is the right test here because a seed fixes the initialisation and the batch order
for every model, so seed-to-seed noise is shared; an unpaired (Welch) test would be weaker. DeLong's
test (:func:`ctrkit.bench.stats.delong_test`) answers a different question -- whether two *fixed*
trained models differ on this finite test set -- and ignores the training noise that seeds
measure; it also needs every run's per-row test predictions, which runs do not keep. Models *not*
significantly different from the best are marked with ``≈`` (the best with ``★``). With fewer than
two common seeds nothing is significant, so every model is marked ``≈``. No correction for
multiple comparisons (it would only widen the ``≈`` set).

Tuning trials (runs with a ``study``, from ``ctrkit tune``) are left out: one seed each, they
explore configurations; a configuration enters the leaderboard when a suite runs it with seeds.

For synthetic datasets (a ``truth.json`` beside the data) the Bayes-optimal test AUC and logloss
are shown, and each model's distance to the Bayes AUC (``Bayes − mean test AUC``). For built-in
datasets with BARS configs (``configs/bars/<dataset>/*.yaml``, key ``bars``) the published BARS
test AUC of the model and our difference to it are shown.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ctrkit.bench.db import ResultsDB, db_path
from ctrkit.bench.stats import mean_std_ci, paired_t_p_value, paired_t_test

MIN_SEEDS = 5  # fewer seeds than this are flagged: a std from 2-4 values says little
MISSING = "-"


def _find_db(bench_dir: Path) -> Path:
    info = bench_dir / "suite.json"
    if info.exists():
        db = json.loads(info.read_text()).get("db")
        if db and Path(db).exists():
            return Path(db)
    return bench_dir / "results.sqlite"


def _truth(config: dict[str, Any]) -> dict[str, Any] | None:
    src = (config.get("dataset") or {}).get("source")
    if src and (Path(src) / "truth.json").exists():
        try:
            return json.loads((Path(src) / "truth.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
    return None


def bars_reference(dataset: str) -> dict[str, dict[str, float]]:
    """model name -> ``{"auc", "logloss"}`` published by BARS for the built-in ``dataset``.

    Read from the ``bars`` key of the package's ``configs/bars/<dataset>/*.yaml`` (the same files a
    suite's ``base:`` refers to); models without a BARS figure (``bars: null``) are left out.
    """
    from ctrkit.bench.suite import PACKAGE_CONFIGS

    out: dict[str, dict[str, float]] = {}
    folder = PACKAGE_CONFIGS / "bars" / dataset
    if not dataset or not folder.is_dir():
        return out
    for p in sorted(folder.glob("*.yaml")):
        try:
            cfg = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        bars, name = cfg.get("bars"), (cfg.get("model") or {}).get("name")
        if name and isinstance(bars, dict) and isinstance(bars.get("auc"), (int, float)):
            out[name] = {k: float(v) for k, v in bars.items() if isinstance(v, (int, float))}
    return out


def _mean(xs: list[float | None]) -> float | None:
    v = [x for x in xs if x is not None]
    return sum(v) / len(v) if v else None


def _median(xs: list[Any]) -> float | None:
    v = [float(x) for x in xs if x is not None]
    return statistics.median(v) if v else None


def _fmt(x: float | None, nd: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    return f"{x:.{nd}f}"


def _fmt_signed(x: float | None, nd: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    return f"{x:+.{nd}f}"


def _fmt_big(x: float | None) -> str:
    if x is None:
        return MISSING
    return f"{x:,.0f}"


def _fmt_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_ms(x: float | None) -> str:
    if x is None:
        return MISSING
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


# Cost columns: (row key, runs-table column). The last three arrive with newer result databases;
# an older database (or a run that did not measure them) simply lacks them.
COST_COLUMNS = (
    ("train_seconds", "train_seconds"),
    ("train_samples_per_sec", "train_samples_per_sec"),
    ("eval_samples_per_sec", "eval_samples_per_sec"),
    ("peak_rss_mb", "peak_rss_mb"),
    ("infer_single_ms", "infer_single_ms"),
    ("infer_batch_rows_per_sec", "infer_batch_rows_per_sec"),
)


def leaderboard_rows(db: ResultsDB, suite: str | None = None) -> dict[str, dict[str, Any]]:
    """dataset -> {"task", "bayes", "bars", "environment", "rows": [per-model dicts, by mean test AUC]}."""
    # Tuning trials (``ctrkit tune``: a study name) share the results database but are not rows:
    # each is one seed of a configuration the tuner was exploring. The leaderboard is over seeds, so
    # a configuration a study found enters it when a suite runs it with seeds.
    runs = [r for r in db.runs(suite) if not r.get("study")]
    metrics = db.metrics()
    by_ds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_ds[r["dataset"]].append(r)
    out: dict[str, dict[str, Any]] = {}
    for ds, ds_runs in sorted(by_ds.items()):
        tasks = {t for r in ds_runs for (s, t, m) in metrics.get(r["run_id"], {}) if s == "valid"}
        task = "click" if "click" in tasks else (sorted(tasks)[0] if tasks else "click")

        def val(r: dict[str, Any], split: str, metric: str) -> float | None:
            return metrics.get(r["run_id"], {}).get((split, task, metric))

        models: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for r in ds_runs:
            models[r["model"]][r["config_hash"]].append(r)
        rows = []
        for model, configs in models.items():
            def score(item: tuple[str, list[dict[str, Any]]]) -> tuple[float, int]:
                m = _mean([val(r, "valid", "auc") for r in item[1]])
                return (m if m is not None else -math.inf, len(item[1]))

            ch, best_runs = max(configs.items(), key=score)
            test_auc = {r["seed"]: val(r, "test", "auc") for r in best_runs}
            test_auc = {s: v for s, v in test_auc.items() if v is not None}
            if not test_auc:
                continue
            auc_m, auc_s, lo, hi = mean_std_ci(list(test_auc.values()))
            ll = [v for v in (val(r, "test", "logloss") for r in best_runs) if v is not None]
            ll_m, ll_s, _, _ = mean_std_ci(ll) if ll else (None, None, None, None)
            config = json.loads(best_runs[0]["config"])
            row = {
                "model": model,
                "model_name": (config.get("model") or {}).get("name", model),
                "config_hash": ch,
                "grid_point": json.loads(best_runs[0]["grid_point"] or "{}"),
                "configs": len(configs),
                "seeds": len(test_auc),
                "valid_auc": _mean([val(r, "valid", "auc") for r in best_runs]),
                "test_auc_by_seed": test_auc,
                "test_auc": auc_m, "test_auc_std": auc_s, "ci_low": lo, "ci_high": hi,
                "test_logloss": ll_m, "test_logloss_std": ll_s,
                "parameters": best_runs[0]["parameters"],
                "config": config,
            }  # fmt: skip
            for key, column in COST_COLUMNS:
                row[key] = _median([r.get(column) for r in best_runs])
            rows.append(row)
        rows.sort(key=lambda x: -x["test_auc"])
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank
        if rows:
            top = rows[0]
            top["mark"] = "★"
            for row in rows[1:]:
                common = sorted(set(top["test_auc_by_seed"]) & set(row["test_auc_by_seed"]))
                a = [top["test_auc_by_seed"][s] for s in common]
                b = [row["test_auc_by_seed"][s] for s in common]
                t, sig = paired_t_test(a, b)
                row["paired_t"] = t
                row["p_value"] = paired_t_p_value(a, b)
                row["common_seeds"] = len(common)
                row["mark"] = "" if sig else "≈"
        bayes = None
        truth = _truth(rows[0]["config"]) if rows else None
        if truth:
            bayes = (truth.get("bayes", {}).get("test", {}) or {}).get(task)
        adapter = str((rows[0]["config"].get("dataset") or {}).get("name", "")) if rows else ""
        bars = bars_reference(adapter) if adapter and adapter != "generic" else {}
        for row in rows:
            ref = bars.get(row["model_name"])
            row["bars_auc"] = ref["auc"] if ref else None
            row["bars_delta"] = row["test_auc"] - ref["auc"] if ref else None
        env = {
            "cpu_model": sorted({str(r["cpu_model"]) for r in ds_runs if r.get("cpu_model")}),
            "threads": sorted({int(r["threads"]) for r in ds_runs if r.get("threads") is not None}),
            "ctrkit_version": sorted({str(r["ctrkit_version"]) for r in ds_runs if r.get("ctrkit_version")}),
            "git_commit": sorted({str(r["git_commit"])[:12] for r in ds_runs if r.get("git_commit")}),
        }
        out[ds] = {"task": task, "bayes": bayes, "bars": bool(bars), "adapter": adapter, "environment": env, "rows": rows}
    return out


def environment_line(env: dict[str, list[Any]]) -> str:
    """What produced a dataset's runs, in one line: CPU, threads, ctrkit version and commits.
    With runs from several commits it says so: their cost columns then compare code versions."""
    parts = []
    for key, label in (("cpu_model", "CPU"), ("threads", "threads"), ("ctrkit_version", "ctrkit"), ("git_commit", "commit")):
        vals = env.get(key) or []
        if vals:
            parts.append(f"{label}: {', '.join(str(v) for v in vals)}")
    line = "; ".join(parts)
    commits = env.get("git_commit") or []
    if len(commits) > 1:
        line += (
            f". The runs come from {len(commits)} commits; speed and memory changes between them "
            "show in the cost columns (each run's commit is recorded with it)"
        )
    return line


# ------------------------------------------------------------------ table layout
@dataclass(frozen=True)
class Column:
    """A leaderboard column: its key (for sorting from a URL), header, tooltip, and cell function.

    ``cell(row)`` returns ``(text, sort value)``; the sort value is a number (or ``None`` when
    missing: sorted last) for numeric columns and a string for text columns.
    """

    key: str
    header: str
    title: str
    numeric: bool
    cell: Callable[[dict[str, Any]], tuple[str, float | str | None]]


def _num(key: str, fmt: Callable[[Any], str]) -> Callable[[dict[str, Any]], tuple[str, float | None]]:
    def cell(r: dict[str, Any]) -> tuple[str, float | None]:
        v = r.get(key)
        return fmt(v), (float(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else None)

    return cell


def _model_text(r: dict[str, Any], code: Callable[[str], str]) -> str:
    grid = r["grid_point"]
    return r["model"] + (f" {code(json.dumps(grid, separators=(',', ':')))}" if grid else "")


def columns(table: dict[str, Any], *, code: Callable[[str], str] = lambda s: f"`{s}`") -> list[Column]:
    """The columns of one dataset's table (Bayes and BARS columns only where they apply).

    ``code`` formats the grid point next to the model name (Markdown backticks by default).
    """
    bayes = table.get("bayes")
    cols = [
        Column("mark", "", "★ best; ≈ not significantly different from the best (paired t-test over seeds, 5%)", True,
               lambda r: (r.get("mark", ""), float(r["rank"]))),
        Column("model", "model", "model label, with the grid point of its best configuration", False,
               lambda r: (_model_text(r, code), r["model"].lower())),
        Column("test_auc", "test AUC", "mean ± std over seeds of the best configuration", True,
               lambda r: (f"{_fmt(r['test_auc'])} ± {_fmt(r['test_auc_std'])}", r["test_auc"])),
        Column("ci", "95% CI", "Student-t 95% confidence interval of the mean test AUC", True,
               lambda r: (f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", r["ci_low"])),
        Column("p_value", "p vs best", "two-sided paired t-test over common seeds against the top model", True,
               _num("p_value", _fmt_p)),
    ]  # fmt: skip
    if bayes:
        cols.append(Column("bayes_gap", "Bayes − AUC", "Bayes-optimal test AUC minus the model's mean test AUC", True,
                           lambda r: (_fmt(bayes["auc"] - r["test_auc"]), bayes["auc"] - r["test_auc"])))  # fmt: skip
    if table.get("bars"):
        cols += [
            Column("bars_auc", "BARS AUC", "test AUC published on the BARS leaderboard (one run of its tuned configuration)", True,
                   _num("bars_auc", _fmt)),
            Column("bars_delta", "Δ BARS", "our mean test AUC minus the BARS figure", True, _num("bars_delta", _fmt_signed)),
        ]  # fmt: skip
    cols += [
        Column("test_logloss", "test logloss", "mean ± std over seeds", True,
               lambda r: (f"{_fmt(r['test_logloss'])} ± {_fmt(r['test_logloss_std'])}", r["test_logloss"])),
        Column("valid_auc", "valid AUC", "mean validation AUC (chooses the configuration)", True, _num("valid_auc", _fmt)),
        Column("seeds", "seeds", f"seeds of the best configuration (fewer than {MIN_SEEDS} are flagged)", True,
               lambda r: (str(r["seeds"]) + ("" if r["seeds"] >= MIN_SEEDS else " ⚠"), float(r["seeds"]))),
        Column("configs", "configs", "configurations tried (grid points)", True, _num("configs", str)),
        Column("train_seconds", "train s", "median training seconds over seeds", True, _num("train_seconds", lambda v: _fmt(v, 1))),
        Column("train_samples_per_sec", "samples/s", "median training samples per second", True,
               _num("train_samples_per_sec", _fmt_big)),
        Column("parameters", "parameters", "trainable parameters", True, _num("parameters", _fmt_big)),
        Column("peak_rss_mb", "peak RSS MB", "median peak resident memory of the run", True, _num("peak_rss_mb", _fmt_big)),
        Column("infer_single_ms", "infer 1 row ms", "median latency of scoring a single row", True, _num("infer_single_ms", _fmt_ms)),
        Column("infer_batch_rows_per_sec", "infer rows/s", "median batch inference throughput", True,
               _num("infer_batch_rows_per_sec", _fmt_big)),
    ]  # fmt: skip
    return cols


# Plots: (row key, axis label, file suffix). One plot per dataset and cost that any row has.
PLOTS = (
    ("train_seconds", "training time (s)", "train_seconds"),
    ("infer_single_ms", "inference latency, one row (ms)", "infer_single_ms"),
    ("parameters", "parameters", "parameters"),
)


def slug(text: str) -> str:
    """A file-name and HTML-id safe form of a dataset label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "dataset"


def dataset_plots(table: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(suffix, title, svg)`` of every AUC-against-cost plot that has data for ``table``."""
    from ctrkit.bench.plots import PlotPoint, scatter_svg

    out = []
    for key, label, suffix in PLOTS:
        pts = [
            PlotPoint(r["model"], float(r[key]), r["test_auc"], r["ci_low"], r["ci_high"])
            for r in table["rows"]
            if r.get(key) is not None and float(r[key]) >= 0
        ]
        if not pts:
            continue
        title = f"test AUC against {label}"
        out.append((suffix, title, scatter_svg(pts, title=title, x_label=label)))
    return out


# ------------------------------------------------------------------ markdown
def _md_cell(text: str) -> str:
    # '|' would split the cell; '<' starting a tag ('<i>', '</x', '<!--') would be read as HTML by
    # Markdown renderers. A '<' before anything else ('<0.001') is plain text and stays readable.
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text.replace("|", "\\|").replace("\n", " "))


def render(
    tables: dict[str, dict[str, Any]],
    title: str,
    *,
    plot_links: dict[str, list[tuple[str, str]]] | None = None,
    wall_time: str | None = None,
) -> str:
    """The Markdown leaderboard. ``plot_links``: dataset -> ``[(title, relative path)]`` of its
    plots; ``wall_time``: the suite's wall-time line (:meth:`SessionSummary.describe`)."""
    lines = [f"# Leaderboard: {title}", ""]
    if wall_time:
        lines += [_md_cell(wall_time), ""]
    lines.append(
        "Best configuration per model by mean validation AUC; test metrics are mean ± std over seeds, "
        "CI is the 95% Student-t interval of the mean test AUC. ★ best, ≈ not significantly different "
        "from the best (paired t-test over seeds, 5%; p vs best is its two-sided p-value). Cost columns "
        f"are medians over seeds; {MISSING} where not recorded. ⚠ fewer than {MIN_SEEDS} seeds."
    )
    for ds, t in tables.items():
        lines += ["", f"## {ds} (task `{t['task']}`)", ""]
        bayes = t["bayes"]
        if bayes:
            lines += [f"Bayes-optimal test AUC {bayes['auc']:.4f}, logloss {bayes['logloss']:.4f} (from truth.json).", ""]
        if t.get("bars"):
            lines += [f"BARS AUC: the published BARS leaderboard figure for `{t['adapter']}` (one run of BARS's tuned configuration).", ""]
        env = environment_line(t.get("environment") or {})
        if env:
            lines += [_md_cell(env) + ".", ""]
        cols = columns(t)
        lines.append("| " + " | ".join(_md_cell(c.header) for c in cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for r in t["rows"]:
            lines.append("| " + " | ".join(_md_cell(c.cell(r)[0]) for c in cols) + " |")
        for plot_title, rel in (plot_links or {}).get(ds, []):
            lines += ["", f"![{plot_title}]({rel})"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ files
@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    plots: list[Path]


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, rename: a reader (a browser
    reloading, a CI step publishing the page) never sees a half-written file.

    Not ``ctrkit.train.checkpoint``'s writer: that imports torch, and its ``mkstemp`` files are
    private (0600) while a leaderboard is meant to be served and read by others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # readable by a web server or a colleague, like a plain open() under umask 022
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _leaderboard_tables(d: Path, db: str | Path | None, suite: str | None) -> dict[str, Any]:
    """The leaderboard of the results database (``db``, else the benchmark's own), or, in a
    directory that has no database but an archive's ``runs.jsonl``
    (:mod:`ctrkit.bench.archive`), of that archive, read into a throwaway SQLite file."""
    from ctrkit.bench.archive import RUNS_FILE, read_archive_runs

    path = db or _find_db(d)
    try:
        file = db_path(path)
    except ValueError:
        file = None  # a database server: no file to look for
    if db is None and file is not None and not file.exists() and (d / RUNS_FILE).exists():
        runs = read_archive_runs(d, suite=suite)
        with tempfile.TemporaryDirectory(prefix="ctrkit-archive-") as tmp, ResultsDB(Path(tmp) / "archive.sqlite") as database:
            for row, metrics, evaluations in runs:
                database.record(row, metrics, evaluations)
            return leaderboard_rows(database, suite)
    if file is not None and not file.exists():
        raise FileNotFoundError(f"{file}: no results database (nor an archive's {RUNS_FILE})")
    with ResultsDB(path) as database:
        return leaderboard_rows(database, suite)


def write_reports(bench_dir: str | Path, *, db: str | Path | None = None, suite: str | None = None) -> ReportFiles:
    """Write ``leaderboard.md``, ``leaderboard.html`` and ``plots/<dataset>-<cost>.svg`` into
    ``bench_dir`` (each atomically) and return their paths. ``bench_dir`` may also be an archive
    directory (``runs.jsonl``, ``sessions.jsonl``; see :mod:`ctrkit.bench.archive`)."""
    from ctrkit.bench.html import render_html
    from ctrkit.bench.sessions import read_sessions

    d = Path(bench_dir)
    tables = _leaderboard_tables(d, db, suite)
    title = suite or (json.loads((d / "suite.json").read_text())["name"] if (d / "suite.json").exists() else d.name)
    plots: dict[str, list[tuple[str, str, str]]] = {ds: dataset_plots(t) for ds, t in tables.items()}
    written: list[Path] = []
    links: dict[str, list[tuple[str, str]]] = {}
    for ds, items in plots.items():
        for suffix, plot_title, svg in items:
            p = d / "plots" / f"{slug(ds)}-{suffix}.svg"
            p.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(p, '<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n")
            written.append(p)
            links.setdefault(ds, []).append((plot_title, f"plots/{p.name}"))
    summary = read_sessions(d)
    wall = summary.describe() if summary is not None else None
    md = d / "leaderboard.md"
    _atomic_write(md, render(tables, title, plot_links=links, wall_time=wall))
    html_path = d / "leaderboard.html"
    _atomic_write(html_path, render_html(tables, title, plots=plots, wall_time=wall))
    return ReportFiles(md, html_path, written)


def write_report(bench_dir: str | Path, *, db: str | Path | None = None, suite: str | None = None) -> Path:
    """Write the leaderboard files (see :func:`write_reports`) and return the Markdown's path.

    The HTML page is ``leaderboard.html`` beside it.
    """
    return write_reports(bench_dir, db=db, suite=suite).markdown

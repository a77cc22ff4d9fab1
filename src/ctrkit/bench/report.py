"""``leaderboard.md`` from a benchmark's results database.

Per dataset, per model: the best configuration is the one with the highest *mean validation AUC*
over its seeds (test metrics never choose a configuration). For it the table shows mean ± std
(sample std, ddof=1) of test AUC and logloss over seeds, the 95% confidence interval of the mean
test AUC (Student's t, :mod:`ctrkit.bench.stats`), mean train seconds, training samples/s and
parameters. Models are sorted by mean test AUC.

Significance: every model is compared with the top model by a **paired t-test over seeds** on
test AUC (two-sided, 5%), pairing runs with the same seed (only seeds both have). Pairing is the
right test here because a seed fixes the initialisation and the batch order for every model, so
seed-to-seed noise is shared; an unpaired (Welch) test would be weaker. Models *not* significantly
different from the best are marked with ``≈`` (the best with ``★``). With fewer than two common seeds
nothing is significant, so every model is marked ``≈``. No correction for multiple comparisons.

For synthetic datasets (a ``truth.json`` beside the data) the Bayes-optimal test AUC and logloss
are shown, and each model's distance to the Bayes AUC (``Bayes − mean test AUC``).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ctrkit.bench.db import ResultsDB
from ctrkit.bench.stats import mean_std_ci, paired_t_test


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


def _mean(xs: list[float | None]) -> float | None:
    v = [x for x in xs if x is not None]
    return sum(v) / len(v) if v else None


def _fmt(x: float | None, nd: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{nd}f}"


def _fmt_big(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:,.0f}"


def leaderboard_rows(db: ResultsDB, suite: str | None = None) -> dict[str, dict[str, Any]]:
    """dataset -> {"task", "bayes", "rows": [per-model dicts, sorted by mean test AUC]}."""
    runs = db.runs(suite)
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
            rows.append({
                "model": model,
                "config_hash": ch,
                "grid_point": json.loads(best_runs[0]["grid_point"] or "{}"),
                "configs": len(configs),
                "seeds": len(test_auc),
                "valid_auc": _mean([val(r, "valid", "auc") for r in best_runs]),
                "test_auc_by_seed": test_auc,
                "test_auc": auc_m, "test_auc_std": auc_s, "ci_low": lo, "ci_high": hi,
                "test_logloss": ll_m, "test_logloss_std": ll_s,
                "train_seconds": _mean([r["train_seconds"] for r in best_runs]),
                "train_samples_per_sec": _mean([r["train_samples_per_sec"] for r in best_runs]),
                "parameters": best_runs[0]["parameters"],
                "config": json.loads(best_runs[0]["config"]),
            })  # fmt: skip
        rows.sort(key=lambda x: -x["test_auc"])
        if rows:
            top = rows[0]
            top["mark"] = "★"
            for row in rows[1:]:
                common = sorted(set(top["test_auc_by_seed"]) & set(row["test_auc_by_seed"]))
                t, sig = paired_t_test([top["test_auc_by_seed"][s] for s in common], [row["test_auc_by_seed"][s] for s in common])
                row["paired_t"] = t
                row["mark"] = "" if sig else "≈"
        bayes = None
        truth = _truth(rows[0]["config"]) if rows else None
        if truth:
            bayes = (truth.get("bayes", {}).get("test", {}) or {}).get(task)
        out[ds] = {"task": task, "bayes": bayes, "rows": rows}
    return out


def render(tables: dict[str, dict[str, Any]], title: str) -> str:
    lines = [f"# Leaderboard: {title}", ""]
    lines.append(
        "Best configuration per model by mean validation AUC; test metrics are mean ± std over seeds, "
        "CI is the 95% Student-t interval of the mean test AUC. ★ best, ≈ not significantly different "
        "from the best (paired t-test over seeds, 5%)."
    )
    for ds, t in tables.items():
        lines += ["", f"## {ds} (task `{t['task']}`)", ""]
        bayes = t["bayes"]
        if bayes:
            lines += [f"Bayes-optimal test AUC {bayes['auc']:.4f}, logloss {bayes['logloss']:.4f} (from truth.json).", ""]
        head = ["", "model", "test AUC", "95% CI", "test logloss", "valid AUC", "seeds", "configs", "train s", "samples/s", "parameters"]
        if bayes:
            head.insert(4, "Bayes − AUC")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" for _ in head) + "|")
        for r in t["rows"]:
            cells = [
                r.get("mark", ""),
                r["model"] + (f" `{json.dumps(r['grid_point'], separators=(',', ':'))}`" if r["grid_point"] else ""),
                f"{_fmt(r['test_auc'])} ± {_fmt(r['test_auc_std'])}",
                f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]",
                f"{_fmt(r['test_logloss'])} ± {_fmt(r['test_logloss_std'])}",
                _fmt(r["valid_auc"]),
                str(r["seeds"]),
                str(r["configs"]),
                _fmt(r["train_seconds"], 1),
                _fmt_big(r["train_samples_per_sec"]),
                _fmt_big(r["parameters"]),
            ]
            if bayes:
                cells.insert(4, _fmt(bayes["auc"] - r["test_auc"]))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(bench_dir: str | Path, *, db: str | Path | None = None, suite: str | None = None) -> Path:
    """Write ``<bench_dir>/leaderboard.md`` and return its path."""
    d = Path(bench_dir)
    path = db or _find_db(d)
    from ctrkit.bench.db import db_path

    if not db_path(path).exists():
        raise FileNotFoundError(f"{db_path(path)}: no results database")
    with ResultsDB(path) as database:
        tables = leaderboard_rows(database, suite)
    title = suite or (json.loads((d / "suite.json").read_text())["name"] if (d / "suite.json").exists() else d.name)
    out = d / "leaderboard.md"
    out.write_text(render(tables, title))
    return out

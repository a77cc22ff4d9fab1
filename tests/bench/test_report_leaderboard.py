"""The leaderboard files from a results database with known numbers, written directly (no
training): selection of the best configuration, statistics against hand-computed values, cost
columns (present or not), BARS figures, escaping, the SVG plots and the Pareto front.

``make_fake_bench`` is also used by the browser test (test_report_browser.py)."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ctrkit.bench.db import ResultsDB
from ctrkit.bench.plots import PlotPoint, pareto_front, scatter_svg
from ctrkit.bench.report import environment_line, leaderboard_rows, write_report, write_reports
from ctrkit.bench.suite import config_hash, run_id

SEEDS = (2021, 2022, 2023, 2024, 2025)
# Per model: test AUC per seed (the seeds shift every model alike: paired tests see through it).
SHIFT = (0.0, 0.0004, -0.0003, 0.0002, -0.0001)
MODELS = {
    # label: (model name, base AUC, params, train seconds, infer single ms or None)
    "FinalMLP": ("FinalMLP", 0.9860, 1_200_000, 900.0, 0.80),
    "DCNv2": ("DCNv2", 0.98595, 900_000, 700.0, 0.60),  # within noise of the best
    "DeepFM": ("DeepFM", 0.9840, 600_000, 300.0, 0.40),
    "LR": ("LR", 0.9356, 5_000, 20.0, 0.05),
    "Wide&Deep <i>x</i>": ("WideDeep", 0.9830, 650_000, 350.0, None),  # a label that needs escaping
}
# The tied model's own seed noise, so its paired differences are not constant.
NOISE = {"DCNv2": (0.0002, -0.0003, 0.0001, 0.0004, -0.0002)}


def _run(dataset: dict, label: str, name: str, seed: int, params: dict, grid_point: dict) -> tuple[dict, str]:
    cfg = {"dataset": dataset, "model": {"name": name, "params": params}, "training": {"epochs": 1}}
    ch = config_hash(cfg)
    cfg["training"]["seed"] = seed
    return (
        {
            "run_id": run_id(ch, seed), "suite": "fake", "dataset": "frappe", "model": label, "config": cfg,
            "config_hash": ch, "seed": seed, "grid_point": grid_point, "status": "finished",
            "cpu_model": "Test CPU <1>", "threads": 1, "ctrkit_version": "0.0", "git_commit": "abcdef0123456789",
        },  # fmt: skip
        ch,
    )


def make_fake_bench(root: Path, *, with_cost_columns: bool = True) -> Path:
    """``root`` with ``results.sqlite`` and ``suite.json`` for suite ``fake`` on dataset ``frappe``
    (adapter ``frappe_x1``: BARS figures apply). DeepFM has a second, worse configuration."""
    root.mkdir(parents=True, exist_ok=True)
    dataset = {"name": "frappe_x1", "source": str(root / "no-data")}
    db_file = root / "results.sqlite"
    cost_rows = []
    with ResultsDB(db_file) as db:
        for label, (name, auc, params, secs, infer) in MODELS.items():
            configs = [({}, 0.0)]
            if name == "DeepFM":
                configs = [({"model.params.net_dropout": 0.1}, 0.0), ({"model.params.net_dropout": 0.5}, -0.01)]
            for grid_point, worse in configs:
                for i, seed in enumerate(SEEDS):
                    run, _ = _run(dataset, label, name, seed, {k.rsplit(".", 1)[1]: v for k, v in grid_point.items()}, grid_point)
                    test_auc = auc + SHIFT[i] + worse + NOISE.get(label, (0.0,) * 5)[i]
                    run.update(parameters=params, train_seconds=secs + i, train_samples_per_sec=1e6 / secs)
                    metrics = [
                        ("valid", "click", "auc", test_auc + 0.001),
                        ("test", "click", "auc", test_auc),
                        ("test", "click", "logloss", 0.15 + (0.99 - test_auc)),
                    ]
                    db.record(run, metrics)
                    cost_rows.append((run["run_id"], 400.0 + i, infer, None if infer is None else 1e5 / infer))
    if with_cost_columns:
        # Columns of newer result databases, written with plain sqlite3 so that the fixture does not
        # depend on how the database layer records them (an older database lacks them: '-').
        con = sqlite3.connect(db_file)
        with con:
            have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
            for col in ("peak_rss_mb", "infer_single_ms", "infer_batch_rows_per_sec"):
                if col not in have:
                    con.execute(f"ALTER TABLE runs ADD COLUMN {col} REAL")
            con.executemany(
                "UPDATE runs SET peak_rss_mb = ?, infer_single_ms = ?, infer_batch_rows_per_sec = ? WHERE run_id = ?",
                [(rss, ms, rows, rid) for rid, rss, ms, rows in cost_rows],
            )
        con.close()
    (root / "suite.json").write_text(json.dumps({"name": "fake", "db": str(db_file)}))
    return root


@pytest.fixture
def bench(tmp_path):
    return make_fake_bench(tmp_path / "bench")


def test_rows_statistics_and_costs(bench):
    with ResultsDB(bench / "results.sqlite") as db:
        table = leaderboard_rows(db)["frappe"]
    rows = table["rows"]
    assert [r["model"] for r in rows] == ["FinalMLP", "DCNv2", "DeepFM", "Wide&Deep <i>x</i>", "LR"]
    assert [r["mark"] for r in rows] == ["★", "≈", "", "", ""]
    top, tied, deepfm, widedeep, lr = rows
    # FinalMLP: 0.9860 + shifts (0, 4, -3, 2, -1)e-4: mean 0.98604; deviations (-0.4, 3.6, -3.4, 1.6, -1.4)e-4,
    # squares sum to 29.2e-8: sample std sqrt(29.2e-8 / 4)
    assert top["test_auc"] == pytest.approx(0.98604, abs=1e-12)
    assert top["test_auc_std"] == pytest.approx(math.sqrt(29.2e-8 / 4), rel=1e-6)
    half = 2.776 * math.sqrt(29.2e-8 / 4) / math.sqrt(5)
    assert (top["ci_low"], top["ci_high"]) == pytest.approx((0.98604 - half, 0.98604 + half), abs=1e-12)
    # DCNv2 vs FinalMLP, paired: d = 5e-5 - noise = (-15, 35, -5, -35, 25)e-5, mean 1e-5,
    # sample variance 33.2e-8 / 4 -> t = 1e-5 / sqrt(8.3e-8 / 5); df 4: p = 1 - sin(th)(1 + cos(th)^2 / 2)
    t = 1e-5 / math.sqrt(8.3e-8 / 5)
    th = math.atan(t / 2)
    assert tied["paired_t"] == pytest.approx(t, rel=1e-6)
    assert tied["p_value"] == pytest.approx(1 - math.sin(th) * (1 + math.cos(th) ** 2 / 2), rel=1e-6)
    assert deepfm["p_value"] < 1e-3 and deepfm["common_seeds"] == 5
    # DeepFM: two configurations; the one with the higher validation AUC wins
    assert deepfm["configs"] == 2 and deepfm["grid_point"] == {"model.params.net_dropout": 0.1}
    assert deepfm["test_auc"] == pytest.approx(0.98404, abs=1e-12)
    # costs: medians over seeds (train_seconds = secs + seed index 0..4 -> secs + 2)
    assert deepfm["train_seconds"] == 302.0 and deepfm["parameters"] == 600_000
    assert deepfm["peak_rss_mb"] == 402.0 and deepfm["infer_single_ms"] == 0.40
    assert widedeep["infer_single_ms"] is None and widedeep["infer_batch_rows_per_sec"] is None
    # BARS figures by the model's registered name (the label differs for Wide&Deep)
    assert table["bars"] and lr["bars_auc"] == 0.9356
    assert widedeep["bars_auc"] == 0.9841 and widedeep["bars_delta"] == pytest.approx(0.98304 - 0.9841, abs=1e-12)
    assert table["environment"]["threads"] == [1]


def test_environment_line_says_when_runs_span_commits():
    one = environment_line({"cpu_model": ["Xeon"], "threads": [1], "ctrkit_version": ["0.1.0"], "git_commit": ["abc"]})
    assert one == "CPU: Xeon; threads: 1; ctrkit: 0.1.0; commit: abc"
    two = environment_line({"threads": [1], "git_commit": ["abc", "def"]})
    assert two.startswith("threads: 1; commit: abc, def. The runs come from 2 commits;")
    assert environment_line({}) == ""


def _md_rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in md.splitlines() if line.startswith("| ") and not line.startswith("|  | model")]


def test_markdown(bench):
    path = write_report(bench)  # the signature the CLI uses: returns the Markdown's path
    assert path == bench / "leaderboard.md"
    md = path.read_text()
    header = next(line for line in md.splitlines() if line.startswith("|  | model"))
    cols = [c.strip() for c in header.split("|")[1:-1]]
    rows = {r[1].split(" `")[0]: dict(zip(cols, r)) for r in _md_rows(md)}
    assert rows["FinalMLP"][""] == "★" and rows["DCNv2"][""] == "≈"
    assert rows["DCNv2"]["p vs best"] == "0.942"
    assert rows["FinalMLP"]["test AUC"] == "0.9860 ± 0.0003"
    assert rows["LR"]["BARS AUC"] == "0.9356" and rows["LR"]["Δ BARS"] == "+0.0000"
    assert rows["DeepFM"]["train s"] == "302.0" and rows["DeepFM"]["infer 1 row ms"] == "0.400"
    assert rows["DeepFM"]["model"] == 'DeepFM `{"model.params.net_dropout":0.1}`'
    # absent costs are '-'; raw HTML in a label is escaped for Markdown renderers
    assert rows["Wide&Deep &lt;i>x&lt;/i>"]["infer 1 row ms"] == "-"
    assert rows["LR"]["p vs best"] == "<0.001"
    assert "threads: 1" in md  # the environment line of the dataset's section
    assert "![test AUC against training time (s)](plots/frappe-train_seconds.svg)" in md


def test_tuning_trials_are_not_rows(bench):
    # A tuning trial of LR with a far better validation AUC: one seed of an exploratory
    # configuration, recorded with its study name; the leaderboard ignores it.
    con = sqlite3.connect(bench / "results.sqlite")
    with con:
        have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
        for col, kind in (("study", "TEXT"), ("trial", "INTEGER")):
            if col not in have:
                con.execute(f"ALTER TABLE runs ADD COLUMN {col} {kind}")
        cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
        row = dict(zip(cols, con.execute("SELECT * FROM runs WHERE model = 'LR' LIMIT 1").fetchone()))
        row.update(run_id="trial-0", config_hash="tuned", study="fake/frappe/LR", trial=0)
        con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))
        con.executemany(
            "INSERT INTO metrics (run_id, split, task, metric, value) VALUES ('trial-0', ?, 'click', 'auc', ?)",
            [("valid", 0.999), ("test", 0.999)],
        )
    con.close()
    with ResultsDB(bench / "results.sqlite") as db:
        lr = next(r for r in leaderboard_rows(db)["frappe"]["rows"] if r["model"] == "LR")
    assert lr["configs"] == 1 and lr["test_auc"] == pytest.approx(0.93564, abs=1e-12)


def test_older_database_without_cost_columns(tmp_path):
    bench = make_fake_bench(tmp_path / "old", with_cost_columns=False)
    files = write_reports(bench)
    rows = {r[1]: r for r in _md_rows(files.markdown.read_text())}
    assert rows["LR"][-3:] == ["-", "-", "-"]  # peak RSS, latency, throughput
    assert [p.name for p in files.plots] == ["frappe-train_seconds.svg", "frappe-parameters.svg"]  # no latency plot


class _Page(HTMLParser):
    """Collects what the tests look at: table rows, tags, attributes and visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.script = False
        self.sorted_by: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        d = dict(attrs)
        if tag == "tr" and "data-model" in d:
            self.rows.append(d)
        if tag == "table":
            self.sorted_by = d.get("data-sorted-by")
        self.script = tag in ("script", "style")

    def handle_endtag(self, tag):
        self.script = False

    def handle_data(self, data):
        if not self.script:
            self.text.append(data)


def parse_page(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


def test_html_page(bench):
    files = write_reports(bench)
    html = files.html.read_text()
    page = parse_page(html)
    # the rows, in leaderboard order, with the label escaped once (and decoded by the parser)
    assert [r["data-model"] for r in page.rows] == ["FinalMLP", "DCNv2", "DeepFM", "Wide&Deep <i>x</i>", "LR"]
    assert "<i>x</i>" not in html and "Wide&amp;Deep &lt;i&gt;x&lt;/i&gt;" in html
    assert "i" not in page.tags  # no markup from a label made it into the page
    assert "Test CPU <1>" in "".join(page.text)
    # self-contained: nothing is fetched (the only URL is the SVG namespace)
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", html)
    assert set(re.findall(r"https?://[^\"' <]+", html)) == {"http://www.w3.org/2000/svg"}
    # one sortable table with the BARS columns, and the three plots inline
    heads = re.findall(r'<th [^>]*data-key="([a-z_]+)"', html)
    assert heads[:5] == ["mark", "model", "test_auc", "ci", "p_value"] and {"bars_auc", "bars_delta", "infer_single_ms"} <= set(heads)
    assert html.count("<svg ") == 3 and html.count('class="front"') >= 3
    assert len(page.rows) == len(MODELS)


def test_html_empty_database(tmp_path):
    (tmp_path / "b").mkdir()
    ResultsDB(tmp_path / "b" / "results.sqlite").close()
    files = write_reports(tmp_path / "b")
    assert "No finished runs yet." in files.html.read_text()


def test_missing_database_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path)


# ------------------------------------------------------------------ plots
def test_pareto_front():
    # (cost, auc): lower cost and higher AUC are better
    pts = [(1.0, 0.70), (2.0, 0.80), (3.0, 0.75), (4.0, 0.90), (4.0, 0.85), (0.5, 0.60), (2.0, 0.80)]
    assert pareto_front(pts) == [0, 1, 3, 5, 6]  # equal points do not dominate each other
    assert pareto_front([(1.0, 0.5)]) == [0]
    assert pareto_front([]) == []


def test_svg_is_valid_xml_escaped_and_marks_the_front(bench):
    pts = [
        PlotPoint("LR", 20.0, 0.936, 0.935, 0.937),
        PlotPoint("A&B <x>", 300.0, 0.984, 0.983, 0.985),
        PlotPoint("slow", 900.0, 0.980),
        PlotPoint("best", 1000.0, 0.986, 0.9855, 0.9865),
        PlotPoint("mid", 500.0, 0.983),
        PlotPoint("mid2", 600.0, 0.982),
    ]
    svg = scatter_svg(pts, title="AUC vs <time>", x_label="training time (s)")
    root = ET.fromstring(svg)  # well-formed standalone SVG
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    front = [g.find(f"{ns}title").text for g in root.iter(f"{ns}g") if g.get("class") == "front"]
    assert sorted(t.split(":")[0] for t in front) == ["A&B <x>", "LR", "best"]
    assert "(log scale)" in svg  # 20 .. 1000 spans a factor of 50
    # the weak baseline sits on the bottom edge (a triangle), the others keep the axis to themselves
    lr = next(g for g in root.iter(f"{ns}g") if g.find(f"{ns}title").text.startswith("LR"))
    assert lr.find(f"{ns}path") is not None and "below the axis" in lr.find(f"{ns}title").text
    # the SVG files written beside the page parse too
    for p in write_reports(bench).plots:
        ET.fromstring(p.read_text().split("\n", 1)[1])
    assert "no data" in scatter_svg([], title="t", x_label="x")

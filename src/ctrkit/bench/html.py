"""``leaderboard.html``: one self-contained static page (inline CSS, a few lines of inline JS, the
plots as inline SVG; nothing fetched from anywhere), readable without the script.

Every table is sortable by clicking a header (again to reverse). A URL fragment sorts on load:
``leaderboard.html#sort=train_seconds`` (ascending) or ``#sort=test_auc:desc`` -- a link can show a
particular view, and the tests check the script through it. Missing values sort last either way.
All text taken from the database or configs is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from ctrkit.bench.report import MIN_SEEDS, Column, columns, environment_line, slug

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;margin:1.5rem auto;max-width:1800px;padding:0 1rem;color:#1d1d1f;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
p.note,p.env{color:#444;font-size:.9rem;max-width:80rem}p.env{color:#666;font-size:.8rem}
nav a{margin-right:1rem}
.scroll{overflow-x:auto}
table.lb{border-collapse:collapse;font-size:.85rem;white-space:nowrap}
table.lb th,table.lb td{padding:.3rem .45rem;border-bottom:1px solid #e6e6e6;text-align:right}
table.lb th{background:#f4f5f7;position:sticky;top:0;cursor:pointer;user-select:none;font-weight:600}
table.lb th:focus{outline:2px solid #1f5fa8}
table.lb th[aria-sort=ascending]::after{content:" ▲";font-size:.7em}
table.lb th[aria-sort=descending]::after{content:" ▼";font-size:.7em}
table.lb td.text,table.lb th.text{text-align:left}
table.lb tr.best td{background:#eef4fb}
table.lb tr.tied td.c-mark{color:#1f5fa8}
table.lb td.missing{color:#999}
table.lb td.c-model code{font-size:.8em;color:#555}
.pos{color:#17663a}.neg{color:#9c2f2f}
.plots{display:flex;flex-wrap:wrap;gap:1rem;margin-top:1rem}
.plots figure{margin:0;border:1px solid #e6e6e6}
"""

# Sorting: rows carry their sort keys in data-v; numeric columns compare as numbers, text columns
# with localeCompare; empty keys (missing values) always go last.
_JS = """
(function () {
  function sortTable(table, idx, dir) {
    var th = table.tHead.rows[0].cells[idx], num = th.getAttribute("data-type") === "num";
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[idx].getAttribute("data-v"), y = b.cells[idx].getAttribute("data-v");
      if (x === "" || y === "") return (x === "") - (y === "");
      var c = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return dir === "asc" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
    table.setAttribute("data-sorted-by", th.getAttribute("data-key") + ":" + dir);
  }
  var tables = document.querySelectorAll("table.lb");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, idx) {
      function go() { sortTable(table, idx, th.getAttribute("aria-sort") === "ascending" ? "desc" : "asc"); }
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
    });
  });
  var m = /[#&]sort=([A-Za-z0-9_]+)(?::(asc|desc))?/.exec(window.location.hash);
  if (m) Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, idx) {
      if (th.getAttribute("data-key") === m[1]) sortTable(table, idx, m[2] || "asc");
    });
  });
})();
"""


def _attr(v: Any) -> str:
    return escape(str(v), quote=True)


def _sort_value(v: float | str | None) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # full precision: the displayed text is rounded and would tie
    return str(v)


def _cell(col: Column, row: dict[str, Any]) -> str:
    text, key = col.cell(row)
    classes = [f"c-{col.key}"]
    if not col.numeric:
        classes.append("text")
    if text.strip() == "-":
        classes.append("missing")
    if col.key == "bars_delta" and isinstance(key, float):
        if key != 0:
            classes.append("pos" if key > 0 else "neg")
    if col.key == "model":
        # The grid point is shown as code; escape both parts separately.
        grid = row["grid_point"]
        inner = escape(row["model"]) + (f" <code>{escape(json.dumps(grid, separators=(',', ':')))}</code>" if grid else "")
    else:
        inner = escape(text)
    return f'<td class="{" ".join(classes)}" data-v="{_attr(_sort_value(key))}">{inner}</td>'


def _table(table: dict[str, Any], ds: str) -> str:
    cols = columns(table)
    out = [f'<div class="scroll"><table class="lb" id="table-{_attr(slug(ds))}" data-dataset="{_attr(ds)}">', "<thead><tr>"]
    for c in cols:
        sort = ' aria-sort="descending"' if c.key == "test_auc" else ' aria-sort="none"'
        cls = ' class="text"' if not c.numeric else ""
        out.append(
            f'<th scope="col" tabindex="0" data-key="{_attr(c.key)}" data-type="{"num" if c.numeric else "text"}" '
            f'title="{_attr(c.title)}"{cls}{sort}>{escape(c.header)}</th>'
        )
    out.append("</tr></thead><tbody>")
    for r in table["rows"]:
        cls = "best" if r.get("mark") == "★" else ("tied" if r.get("mark") == "≈" else "")
        out.append(f'<tr class="{cls}" data-model="{_attr(r["model"])}">' + "".join(_cell(c, r) for c in cols) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def render_html(
    tables: dict[str, dict[str, Any]],
    title: str,
    *,
    plots: dict[str, list[tuple[str, str, str]]] | None = None,
    wall_time: str | None = None,
) -> str:
    """The whole page. ``plots``: dataset -> ``[(suffix, title, svg)]`` (from ``dataset_plots``);
    ``wall_time``: the suite's wall-time line, shown under the title."""
    plots = plots or {}
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Leaderboard: {escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Leaderboard: {escape(title)}</h1>",
        '<p class="note">Best configuration per model by mean validation AUC; test metrics are mean ± std over '
        "seeds and the 95% Student-t interval of the mean test AUC. ★ best; ≈ not significantly different from "
        "the best (paired t-test over the seeds both share, two-sided, 5%; <em>p vs best</em> is its p-value, no "
        f"correction for multiple comparisons). Cost columns are medians over seeds; - where not recorded; ⚠ fewer "
        f"than {MIN_SEEDS} seeds. Click a column header to sort. The plots put each model's test AUC (with its 95% "
        "interval) against a cost; filled points are the Pareto front, the models no other model beats on both.</p>",
    ]
    if wall_time:
        out.append(f'<p class="env">{escape(wall_time)}</p>')
    if len(tables) > 1:
        out.append("<nav>" + "".join(f'<a href="#{_attr(slug(ds))}">{escape(ds)}</a>' for ds in tables) + "</nav>")
    if not tables:
        out.append('<p class="note">No finished runs yet.</p>')
    for ds, t in tables.items():
        out.append(f'<section id="{_attr(slug(ds))}"><h2>{escape(ds)} <small>(task {escape(t["task"])})</small></h2>')
        bayes = t.get("bayes")
        if bayes:
            out.append(
                f'<p class="note">Bayes-optimal test AUC {bayes["auc"]:.4f}, logloss {bayes["logloss"]:.4f} '
                "(from the generator's truth.json): no model can do better on this data.</p>"
            )
        if t.get("bars"):
            out.append(
                f'<p class="note">BARS AUC: the published BARS leaderboard figure for {escape(t["adapter"])} '
                "(one run of BARS's tuned configuration); Δ BARS is our mean minus it.</p>"
            )
        env = environment_line(t.get("environment") or {})
        if env:
            out.append(f'<p class="env">{escape(env)}</p>')
        out.append(_table(t, ds))
        figs = plots.get(ds) or []
        if figs:
            out.append('<div class="plots">')
            for _suffix, plot_title, svg in figs:
                out.append(f'<figure aria-label="{_attr(plot_title)}">{svg}</figure>')
            out.append("</div>")
        out.append("</section>")
    out.append(f"<script>{_JS}</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"

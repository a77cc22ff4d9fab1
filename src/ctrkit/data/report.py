"""What is in an encoded store: rows, label balance, rejects, vocabularies and OOV rates.

:func:`data_report` reads only the store's manifest (counts are computed once, when the store is
built) and returns a JSON-able dict; :func:`format_report` renders it as plain-text tables::

    frappe_x1  (store: stores/frappe_x1)
    split     rows   rejected  click pos  click rate
    train  202,027          0     67,604      0.3346
    ...
    field      vocab  oov train  oov valid  oov test
    user         959    0.0000%    0.0104%    0.0000%
"""

from __future__ import annotations

from typing import Any

from ctrkit.data.store import SPLITS, Store
from ctrkit.schema import NumericFeature


def data_report(store: Store) -> dict[str, Any]:
    """Per split: rows, rejected rows, positives and positive rate per task; per categorical
    field (bucketized numerics included): vocabulary size (reserved ids included) and OOV count
    and rate per split; per sequence field: vocabulary, mean length and OOV rate of its items."""
    m = store.manifest
    schema = store.schema
    order = [s for s in SPLITS if s in m["splits"]] + [s for s in m["splits"] if s not in SPLITS]
    splits: dict[str, Any] = {}
    for s in order:
        info = m["splits"][s]
        n = int(info["rows"])
        splits[s] = {
            "rows": n,
            "rejected": int(info.get("rejected", 0)),
            "tasks": {
                t: {"positives": int(p), "rate": (p / n) if n else None} for t, p in info.get("positives", {}).items()
            },
        }
    fields: dict[str, Any] = {}
    for f in schema.categorical:
        kind = "bucketized" if isinstance(f, NumericFeature) else "categorical"
        entry: dict[str, Any] = {
            "kind": kind,
            "vocab_size": schema.vocab_size(f.name),
            "vocab_owner": schema.vocab_owner(f.name),
            "min_count": getattr(f, "min_count", 1),
            "oov": {},
        }
        for s in order:
            n = splits[s]["rows"]
            c = int(m["splits"][s].get("oov", {}).get(f.name, 0))
            entry["oov"][s] = {"count": c, "rate": (c / n) if n else None}
        fields[f.name] = entry
    sequences: dict[str, Any] = {}
    for f in schema.sequences:
        entry = {"vocab_size": schema.vocab_size(f.name), "vocab_owner": schema.vocab_owner(f.name), "splits": {}}
        for s in order:
            seq = m["splits"][s].get("sequences", {}).get(f.name, {})
            items = int(seq.get("items", 0))
            oov = int(seq.get("oov", 0))
            entry["splits"][s] = {
                "mean_length": float(seq.get("mean_length", 0.0)),
                "items": items,
                "oov": oov,
                "oov_rate": (oov / items) if items else None,
            }
        sequences[f.name] = entry
    return {
        "name": m.get("name"),
        "store": str(store.dir),
        "created": m.get("created"),
        "fingerprint": m.get("fingerprint"),
        "on_bad_rows": m.get("on_bad_rows"),
        "reader": m.get("reader"),
        "splits": splits,
        "fields": fields,
        "numeric": [f.name for f in schema.numeric],
        "sequences": sequences,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.4f}%"


def _table(header: list[str], rows: list[list[str]], align_left: int = 1) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < align_left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [fmt(header), *(fmt(r) for r in rows)]


def format_report(report: dict[str, Any]) -> str:
    """Plain-text tables of a :func:`data_report` dict (splits, then fields, then sequences)."""
    reader = f", written by the {report['reader']} reader" if report.get("reader") else ""
    out = [f"{report.get('name')}  (store: {report.get('store')}{reader})", ""]
    splits = report["splits"]
    tasks = sorted({t for s in splits.values() for t in s["tasks"]})
    header = ["split", "rows", "rejected"]
    for t in tasks:
        header += [f"{t} pos", f"{t} rate"]
    rows = []
    for s, info in splits.items():
        r = [s, f"{info['rows']:,}", f"{info['rejected']:,}"]
        for t in tasks:
            ti = info["tasks"].get(t)
            r += [f"{ti['positives']:,}", "-" if ti["rate"] is None else f"{ti['rate']:.4f}"] if ti else ["-", "-"]
        rows.append(r)
    out += _table(header, rows)
    if report["fields"]:
        out.append("")
        names = list(splits)
        header = ["field", "kind", "min_count", "vocab"] + [f"oov {s}" for s in names]
        rows = []
        for name, f in report["fields"].items():
            vocab = f"{f['vocab_size']:,}" + ("" if f["vocab_owner"] == name else f" ({f['vocab_owner']})")
            rows.append([name, f["kind"], str(f["min_count"]), vocab] + [_pct(f["oov"][s]["rate"]) for s in names])
        out += _table(header, rows, align_left=2)
    if report["sequences"]:
        out.append("")
        names = list(splits)
        header = ["sequence", "vocab"] + [c for s in names for c in (f"len {s}", f"oov {s}")]
        rows = []
        for name, f in report["sequences"].items():
            vocab = f"{f['vocab_size']:,}" + ("" if f["vocab_owner"] == name else f" ({f['vocab_owner']})")
            cells = [name, vocab]
            for s in names:
                si = f["splits"][s]
                cells += [f"{si['mean_length']:.2f}", _pct(si["oov_rate"])]
            rows.append(cells)
        out += _table(header, rows)
    if report["numeric"]:
        out += ["", f"numeric (dense) fields: {', '.join(report['numeric'])}"]
    return "\n".join(out)


__all__ = ["data_report", "format_report"]

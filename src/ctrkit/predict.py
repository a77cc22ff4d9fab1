"""Scoring raw files with a finished run: the run's fitted encoders, then its best model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from ctrkit.data.encoders import Encoders, first_bad_row
from ctrkit.data.loader import BatchLoader
from ctrkit.data.readers import check_structure, header_columns, scan, source_file
from ctrkit.data.store import encode_frame
from ctrkit.errors import DataError
from ctrkit.metrics import sigmoid


def predict_file(
    run_dir: str | Path,
    path: str | Path,
    *,
    format: str | None = None,
    header: bool = True,
    columns: list[str] | None = None,
    separator: str | None = None,
    batch_size: int = 16384,
) -> pl.DataFrame:
    """Probabilities for every row of a raw file: one column ``p_<task>`` per task, in file order.

    Label columns are not needed; unseen categories map to out-of-vocabulary as in training, and
    bad values raise :class:`DataError` naming file, line and column.
    """
    from ctrkit.train.run import load_run

    _, model, _ = load_run(run_dir)
    enc = Encoders.load(Path(run_dir) / "encoders.json")
    schema = model.schema
    src = source_file(path, format=format, header=header, columns=columns, separator=separator)  # type: ignore[arg-type]
    rep = check_structure(src, max_report=1)
    if rep.bad_lines:
        raise DataError(f"row has {rep.bad_counts[0]} fields, expected {rep.expected}", file=src.path, line=rep.bad_lines[0])
    label_cols = {t.source for t in schema.tasks}
    fitted = enc.fitted_schema()
    # Labels are not inputs, and the gAUC group column is only needed when present.
    if fitted.group is not None and fitted.group not in header_columns(src):
        fitted = fitted.model_copy(update={"group": None})
    needed = [c for c in fitted.source_columns if c not in label_cols]
    frame = scan(src, needed).collect().lazy()
    checks = [c for c in enc.validation_exprs() if c[0] not in label_cols]
    bad = first_bad_row(frame, checks)
    if bad is not None:
        col, problem, line, value = bad
        raise DataError(f"{problem}: {value!r}", file=src.path, line=line, column=col)
    arrays = encode_frame(enc, fitted, frame, with_labels=False)
    loader = BatchLoader(None, "predict", batch_size, arrays=arrays, schema=schema, prefetch=0)
    out: dict[str, list[np.ndarray]] = {t: [] for t in schema.task_names}
    with torch.inference_mode():
        for b in loader.epoch(0):
            res = model(b)
            for t, v in res.logits.items():
                out[t].append(v.float().numpy())
    return pl.DataFrame({f"p_{t}": sigmoid(np.concatenate(v)) if v else np.zeros(0) for t, v in out.items()})

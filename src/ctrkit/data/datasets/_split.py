"""BARS' x4 split (Criteo_x4, Avazu_x4), reproduced in numpy from the raw Kaggle file.

The published procedure (reczoo/Datasets ``Avazu/Avazu_x4/convert_avazu_x4.py`` and the Criteo_x4
script beside it, which require ``sklearn==0.19.1``) is::

    ddf = pd.read_csv(raw, dtype=object)                # Criteo: sep='\\t', header=None, names=Label,I1..C26
    y = ddf[label].map(float)
    folds = StratifiedKFold(n_splits=10, shuffle=True, random_state=2018).split(X, y)
    test = fold 0, valid = fold 1, train = folds 2..9 concatenated (each fold in file order)
    ddf.loc[index].to_csv(out, index=False)             # header, ',' separated, '\\n' line ends

scikit-learn 0.19.1's ``StratifiedKFold._make_test_folds`` builds one
``RandomState(random_state)`` and, for each class in sorted order, runs a shuffled ``KFold`` on
``np.zeros(max(n_class, n_splits))`` with that *same* generator: ``rng.shuffle(arange(m))``, then
consecutive folds of sizes ``m // k + 1`` (the first ``m % k`` folds) and ``m // k``; position ``i``
of the class (its ``i``-th row in file order) goes to the fold holding ``i``. Later scikit-learn
versions changed this algorithm, which is why the script pins 0.19.1. :func:`bars_x4_folds`
implements exactly that with numpy's legacy ``RandomState`` (whose stream numpy keeps stable), so
neither pandas nor scikit-learn is needed.

:func:`split_raw` writes the three CSV files the way the script's ``to_csv`` does: the header, then
each raw line with its fields joined by ``,`` (values are copied byte for byte; pandas would write
an empty cell for a missing value, which is what the raw file holds). The published md5s can only
be checked on the full 45.8M-row (Criteo) / 40.4M-row (Avazu) files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from ctrkit.data.readers import check_structure, scan, source_file
from ctrkit.errors import DataError

BARS_SEED = 2018
BARS_FOLDS = 10
_CHUNK = 32 << 20
SPLIT_FORMAT = 1


def bars_x4_folds(labels: np.ndarray, *, n_splits: int = BARS_FOLDS, seed: int = BARS_SEED) -> np.ndarray:
    """Fold (0..n_splits-1) of every row, as scikit-learn 0.19.1's
    ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)`` assigns them (see the module
    docstring). Fold 0 is BARS' test split, fold 1 the validation split, folds 2.. the train split.
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-d, got shape {y.shape}")
    classes, inverse = np.unique(y, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    if len(classes) and np.all(counts < n_splits):
        raise ValueError(f"n_splits={n_splits} cannot be greater than the number of members in each class")
    rng = np.random.RandomState(seed)
    folds = np.zeros(y.shape[0], dtype=np.int8 if n_splits <= 127 else np.int32)
    for c, n_c in enumerate(counts.tolist()):
        m = max(n_c, n_splits)
        order = np.arange(m)
        rng.shuffle(order)  # the class's KFold shuffle, drawn from the shared generator
        sizes = np.full(n_splits, m // n_splits, dtype=np.int64)
        sizes[: m % n_splits] += 1
        fold_of_position = np.empty(m, dtype=folds.dtype)
        start = 0
        for k, size in enumerate(sizes.tolist()):
            fold_of_position[order[start : start + size]] = k
            start += size
        folds[inverse == c] = fold_of_position[:n_c]  # positions >= n_c do not exist: trimmed
    return folds


def _labels(raw: Path, *, header: bool, columns: Sequence[str], label: str, separator: str) -> np.ndarray:
    src = source_file(raw, format="csv", header=header, columns=None if header else list(columns), separator=separator)
    rep = check_structure(src, max_report=1)
    if rep.bad_lines:
        raise DataError(f"row has {rep.bad_counts[0]} fields, expected {rep.expected}", file=raw, line=rep.bad_lines[0])
    frame = scan(src, [label]).collect()
    values = frame[label].str.strip_chars().cast(pl.Float64, strict=False)
    bad = frame.filter(values.is_null())
    if bad.height:
        raise DataError(f"label is not a number: {bad[label][0]!r}", file=raw, line=int(bad["__line"][0]), column=label)
    return values.to_numpy()


def split_raw(
    raw_file: str | Path,
    out_dir: str | Path,
    *,
    columns: Sequence[str],
    label: str,
    header: bool,
    separator: str,
    progress: bool = True,
) -> dict[str, Path]:
    """Split a raw Kaggle file into BARS' x4 ``train.csv`` / ``valid.csv`` / ``test.csv``.

    ``columns`` names the raw columns (written as the header; for a file with a header it must
    equal it), ``label`` is the stratification column, ``separator`` the raw field separator.
    Two passes over the file: labels (Polars), then the lines copied into their fold's file
    (numpy over 32 MiB blocks). Files are written into a temporary directory and moved into
    ``out_dir`` when complete; a ``split.json`` stamp lets an unchanged raw file skip the work.
    """
    from tqdm.auto import tqdm

    raw = Path(raw_file)
    out = Path(out_dir)
    if not raw.exists():
        raise DataError("raw file does not exist", file=raw)
    st = raw.stat()
    stamp = {
        "split_format": SPLIT_FORMAT,
        "raw": str(raw.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "seed": BARS_SEED,
        "n_splits": BARS_FOLDS,
        "columns": list(columns),
    }
    names = {s: out / f"{s}.csv" for s in ("train", "valid", "test")}
    stamp_path = out / "split.json"
    if stamp_path.exists() and all(p.exists() for p in names.values()):
        try:
            old = json.loads(stamp_path.read_text())
        except json.JSONDecodeError:
            old = {}
        if {k: v for k, v in old.items() if k != "rows"} == stamp:
            return names

    if header:
        with open(raw, "rb") as fh:
            first = fh.readline().rstrip(b"\r\n").decode("utf-8", errors="replace")
        if first.split(separator) != list(columns):
            raise DataError(f"header {first.split(separator)} differs from the expected {list(columns)}", file=raw, line=1)
    y = _labels(raw, header=header, columns=columns, label=label, separator=separator)
    folds = bars_x4_folds(y)
    n = int(y.shape[0])

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".split-tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        head = (",".join(columns) + "\n").encode()
        parts = [open(tmp / f"fold{k}.csv", "wb") for k in range(BARS_FOLDS)]
        sep = separator.encode()
        seen = 0

        def emit(block: bytes) -> None:
            nonlocal seen
            if sep != b",":
                block = block.replace(sep, b",")
            lines = np.array(block.replace(b"\r\n", b"\n").rstrip(b"\r").split(b"\n"), dtype=object)
            if seen + lines.size > n:
                raise DataError(f"more lines than the {n} rows counted in the first pass", file=raw)
            f = folds[seen : seen + lines.size]
            for k in range(BARS_FOLDS):
                sel = lines[f == k]
                if sel.size:
                    parts[k].write(b"\n".join(sel.tolist()) + b"\n")
            seen += lines.size

        try:
            for p in parts[:2]:
                p.write(head)
            with open(raw, "rb") as fh, tqdm(
                total=st.st_size, unit="B", unit_scale=True, desc=f"split {raw.name}", disable=not progress, leave=False
            ) as bar:
                if header:
                    bar.update(len(fh.readline()))
                rest = b""
                for block in iter(lambda: fh.read(_CHUNK), b""):
                    bar.update(len(block))
                    block = rest + block
                    cut = block.rfind(b"\n")
                    if cut < 0:
                        rest = block
                        continue
                    rest = block[cut + 1 :]
                    emit(block[:cut])
                if rest.strip(b"\r"):
                    emit(rest)
        finally:
            for p in parts:
                p.close()
        if seen != n:
            raise DataError(f"read {seen} lines but counted {n} rows in the first pass", file=raw)
        os.replace(tmp / "fold0.csv", tmp / "test.csv")
        os.replace(tmp / "fold1.csv", tmp / "valid.csv")
        with open(tmp / "train.csv", "wb") as dst:
            dst.write(head)
            for k in range(2, BARS_FOLDS):
                with open(tmp / f"fold{k}.csv", "rb") as part:
                    shutil.copyfileobj(part, dst, 16 << 20)
                (tmp / f"fold{k}.csv").unlink()
        rows = {
            "train": int((folds >= 2).sum()),
            "valid": int((folds == 1).sum()),
            "test": int((folds == 0).sum()),
        }
        stamp_path.unlink(missing_ok=True)  # never a stamp beside a half-replaced set
        for s, p in names.items():
            os.replace(tmp / f"{s}.csv", p)
        stamp_path.write_text(json.dumps({**stamp, "rows": rows}, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return names

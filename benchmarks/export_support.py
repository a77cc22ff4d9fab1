"""Which registered models export to which serving form (eager, TorchScript, ONNX), and why not.

For every model in :mod:`ctrkit.models.registry` (or the ones given with ``--models``) this trains
a tiny run on synthetic data that fits the model's task kind, exports it with
:func:`ctrkit.serve.export.export_run` (the code behind ``ctrkit export``) and reads the bundle's
``metadata.json`` ``backends``: a portable form is kept only when it reproduces the eager scores
within ``VERIFY_TOL`` (1e-5) on verification batches of other sizes and sequence lengths than the
tracing example. The table shows ``ok`` or the short reason per form; the full reasons follow it.

Data (``ctrkit.data.synthetic.synthesize``, ``--rows`` rows, 5 categorical + 3 numeric fields):

* ``ctr`` models: plain CTR data;
* ``sequence`` models: ``sequence=True`` (user_id, item_id, item_cat and the ``hist_items`` /
  ``hist_cats`` histories sharing item_id's / item_cat's vocabularies);
* ``multitask`` models: ``funnel=True`` (tasks ``click`` and ``conversion``);
* ``multidomain`` models: ``domains=3``.

Models are built with their ``test_params`` (the tiny configurations of ``tests/models``) and
``embedding_dim`` 4 unless ``test_params`` sets it; DSSM's tower fields are renamed to the
synthetic columns. Training: 1 epoch, batch 256, one thread. The export skips the latency
benchmark (``benchmark=False``): only whether each form exports and verifies is measured.

Usage::

    OMP_NUM_THREADS=1 POLARS_MAX_THREADS=1 python benchmarks/export_support.py --markdown
    OMP_NUM_THREADS=1 POLARS_MAX_THREADS=1 python benchmarks/export_support.py --models DIN,DIEN,BST

Everything (data, stores, runs, bundles) goes into a temporary directory that is removed at the
end; ``--workdir DIR`` writes there instead and keeps it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import ctrkit  # noqa: E402
from ctrkit.data.synthetic import SynthConfig, synthesize  # noqa: E402
from ctrkit.models.registry import ModelInfo, list_models  # noqa: E402

FORMS = ("eager", "torchscript", "onnx")
#: Column names of the synthetic data replacing the ``tests/models`` tiny schema's (c0.., n0..).
FIELD_RENAMES = {"c0": "C1", "c1": "C2", "c2": "C3", "c3": "C4", "n0": "I1", "n1": "I2"}


@dataclass
class Result:
    model: str
    kind: str
    seconds: float = 0.0
    train_error: str | None = None  # training (or export_run itself) failed
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)

    def cell(self, form: str, width: int | None) -> str:
        if self.train_error is not None:
            return "-"
        info = self.backends.get(form)
        if info is None:
            return "?"
        if info.get("ok"):
            return "ok"
        err = str(info.get("error") or "failed")
        return err if width is None or len(err) <= width else err[: width - 3] + "..."


def synth_config(kind: str, rows: int) -> SynthConfig:
    """The synthetic dataset a model of task ``kind`` trains on."""
    common: dict[str, Any] = dict(
        rows=rows,
        num_numeric=3,
        num_categorical=5,
        cardinalities=(20, 50, 100, 200, 500),
        num_pairwise=4,
        num_triples=1,
        signal_scale=2.0,
        seed=5,
    )
    if kind == "sequence":
        return SynthConfig(**common, sequence=True, sequence_length=6)
    if kind == "multitask":
        return SynthConfig(**common, funnel=True)
    if kind == "multidomain":
        return SynthConfig(**common, domains=3)
    return SynthConfig(**common)


def model_params(info: ModelInfo) -> dict[str, Any]:
    """The model's ``test_params`` for the synthetic data (embedding_dim 4 unless set)."""
    params: dict[str, Any] = dict(info.cls.test_params)
    if "embedding_dim" in {f.name for f in dataclasses.fields(info.config_class)}:
        params.setdefault("embedding_dim", 4)
    for key, value in list(params.items()):
        if key.endswith("_fields") and isinstance(value, (list, tuple)):
            params[key] = tuple(FIELD_RENAMES.get(v, v) for v in value)
    return params


@contextlib.contextmanager
def quiet_fds() -> Iterator[None]:
    """Send file descriptors 1 and 2 to /dev/null: the legacy ONNX exporter prints the whole
    TorchScript graph from C++ when it fails, and ONNX Runtime logs kernel errors there (the
    reason is kept in the bundle's metadata either way)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def short_error(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".strip()
    return (msg.splitlines()[0] if msg else type(e).__name__)[:500]


def run_one(info: ModelInfo, data: Path, work: Path) -> Result:
    """Train ``info``'s model for one epoch on ``data`` and export it; the backends' results."""
    from ctrkit.serve.export import export_run
    from ctrkit.train.run import train

    res = Result(info.name, info.kind)
    tag = info.name.replace("+", "plus")
    t0 = time.perf_counter()
    cfg = {
        "dataset": {"name": "generic", "source": str(data), "store": str(work / "stores" / data.name)},
        "model": {"name": info.name, "params": model_params(info)},
        "training": {
            "epochs": 1,
            "batch_size": 256,
            "eval_batch_size": 1024,
            "learning_rate": 3e-3,
            "seed": 3,
            "progress": False,
            "threads": 1,
            "prefetch": 0,
        },
        "run_dir": str(work / "runs" / tag),
    }
    try:
        run_dir = train(cfg).run_dir
    except Exception as e:  # noqa: BLE001 - reported in the table
        res.train_error = short_error(e)
        res.seconds = time.perf_counter() - t0
        traceback.print_exc(file=sys.stderr)
        return res
    try:
        with quiet_fds():
            bundle = export_run(run_dir, work / "bundles" / tag, benchmark=False, overwrite=True)
    except Exception as e:  # noqa: BLE001 - reported in the table
        res.train_error = "export: " + short_error(e)
        res.seconds = time.perf_counter() - t0
        traceback.print_exc(file=sys.stderr)
        return res
    meta = json.loads((bundle / "metadata.json").read_text())
    res.backends = {k: v for k, v in meta["backends"].items() if k in FORMS}
    res.seconds = time.perf_counter() - t0
    return res


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "ctrkit": ctrkit.__version__, "torch": torch.__version__}
    for mod in ("onnx", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = "not installed"
    return out


def render(results: list[Result], markdown: bool, width: int | None) -> str:
    """The table: model, kind, one column per form (``ok`` or the short error)."""
    header = ["model", "kind", *FORMS]
    rows = [[r.model, r.kind, *(r.cell(f, width) for f in FORMS)] for r in results]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*row) for row in rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated model names (default: every registered model)")
    ap.add_argument("--workdir", type=Path, help="write data, runs and bundles here and keep them (default: a temp dir, removed)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--rows", type=int, default=3000, help="synthetic rows per dataset (default 3000)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    # A stderr handler of our own keeps the trainer from adding its INFO one (its per-run
    # train.log still gets everything).
    quiet = logging.StreamHandler(sys.stderr)
    quiet.setLevel(logging.WARNING)
    logging.getLogger("ctrkit").addHandler(quiet)
    infos = list_models()
    if args.models:
        by_name = {m.name.lower(): m for m in infos}
        wanted = [n.strip() for n in args.models.split(",") if n.strip()]
        unknown = [n for n in wanted if n.lower() not in by_name]
        if unknown:
            ap.error(f"unknown model(s) {', '.join(unknown)} (known: {', '.join(m.name for m in infos)})")
        infos = [by_name[n.lower()] for n in wanted]

    v = versions()
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), flush=True)
    work = args.workdir if args.workdir is not None else Path(tempfile.mkdtemp(prefix="ctrkit-export-support-"))
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    results: list[Result] = []
    try:
        datasets: dict[str, Path] = {}
        for info in infos:
            if info.kind not in datasets:
                d = work / "data" / info.kind
                if not (d / "schema.yaml").exists():
                    synthesize(d, synth_config(info.kind, args.rows), overwrite=True, progress=False)
                datasets[info.kind] = d
            r = run_one(info, datasets[info.kind], work)
            results.append(r)
            status = r.train_error or "  ".join(f"{f}={'ok' if r.backends.get(f, {}).get('ok') else 'NO'}" for f in FORMS)
            print(f"  {r.model:<13} {r.kind:<11} {r.seconds:6.1f}s  {status}", file=sys.stderr, flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(render(results, args.markdown, 60))
    failures = [(r, f) for r in results for f in FORMS if r.train_error is None and not r.backends.get(f, {}).get("ok")]
    trained_not = [r for r in results if r.train_error is not None]
    if failures or trained_not:
        print()
        print("Full reasons:" if not args.markdown else "Full reasons:\n")
        for r in trained_not:
            print(f"{'- ' if args.markdown else '  '}{r.model} (training): {r.train_error}")
        for r, f in failures:
            print(f"{'- ' if args.markdown else '  '}{r.model} {f}: {r.backends.get(f, {}).get('error')}")
    n_ok = {f: sum(1 for r in results if r.backends.get(f, {}).get("ok")) for f in FORMS}
    print()
    print(
        f"{len(results)} models; "
        + ", ".join(f"{f} {n_ok[f]}/{len(results)}" for f in FORMS)
        + f"; wall time {time.perf_counter() - t_all:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

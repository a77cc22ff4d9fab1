"""Export a finished run into a self-contained serving bundle.

A bundle is a directory that scores raw records on a machine that never saw the training data
(no store, no config paths)::

    metadata.json    model name and params, dataset, tasks, metrics.json of the run, ctrkit/torch
                     versions, creation time, input layout, which portable backends exported (and
                     why not), measured latency per backend, the default backend, and the
                     content hash (sha256) of every other file plus one hash of the whole bundle
    schema.json      the fitted feature schema (vocabulary sizes set)
    encoders.json    the fitted encoders (vocabularies, statistics, bucket edges, domains)
    model.pt         the best state dict (the eager backend rebuilds the model from it)
    model.ts         TorchScript of :class:`TensorModel` (when tracing reproduces eager scores)
    model.onnx       ONNX of :class:`TensorModel` (when export and ONNX Runtime reproduce them)

Portable forms take plain tensors, ``ids (B, F) int64`` (fused-table offsets applied), ``dense
(B, N) float32``, optionally ``domain (B,) int64``, then ``values (B, L) int64`` and ``lengths
(B,) int64`` per sequence field, and return ``(B, T)`` probabilities, one column per task.

Every portable form is verified after export against the eager model on batches of other sizes
(and other sequence lengths) than the tracing example; one that differs by more than
``VERIFY_TOL`` is dropped and the reason recorded in ``metadata.json``.

The bundle is written into a temporary directory next to ``out_dir`` and renamed into place when
complete, so a crash never leaves a half-written bundle that looks finished.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ctrkit import __version__
from ctrkit.batch import Batch, FieldLayout, SequenceBatch
from ctrkit.schema import FeatureSchema

BUNDLE_FORMAT = 1
#: Largest |portable - eager| probability difference accepted when verifying an export.
VERIFY_TOL = 1e-5
#: Files whose content the bundle hash covers (metadata.json holds the hashes, so not itself).
HASHED_FILES = ("schema.json", "encoders.json", "model.pt", "model.ts", "model.onnx")


class TensorModel(nn.Module):
    """A ctrkit model behind a plain-tensor interface, for tracing and ONNX.

    ``forward(ids, dense, [domain], values_1, lengths_1, ...) -> (B, T)`` probabilities, tasks in
    ``schema.task_names`` order.
    """

    def __init__(self, model: nn.Module, schema: FeatureSchema):
        super().__init__()
        self.model = model
        self.task_names = list(schema.task_names)
        self.sequence_names = [f.name for f in schema.sequences]
        self.has_domain = schema.domain is not None

    def forward(self, ids: torch.Tensor, dense: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        i = 0
        domain = None
        if self.has_domain:
            domain = rest[0]
            i = 1
        seqs = {}
        for name in self.sequence_names:
            seqs[name] = SequenceBatch(rest[i], rest[i + 1])
            i += 2
        out = self.model(Batch(ids=ids, dense=dense, sequences=seqs, domain=domain))
        return torch.sigmoid(torch.stack([out.logits[t].reshape(-1) for t in self.task_names], dim=1))


def input_names(schema: FeatureSchema) -> list[str]:
    """Names of the portable model's inputs, in argument order."""
    names = ["ids", "dense"]
    if schema.domain is not None:
        names.append("domain")
    for f in schema.sequences:
        names += [f"{f.name}.values", f"{f.name}.lengths"]
    return names


def batch_tensors(batch: Batch, schema: FeatureSchema) -> tuple[torch.Tensor, ...]:
    """The portable model's positional inputs for ``batch``."""
    out = [batch.ids, batch.dense]
    if schema.domain is not None:
        if batch.domain is None:
            raise ValueError("the schema has a domain column but the batch has no domain ids")
        out.append(batch.domain)
    for f in schema.sequences:
        s = batch.sequences[f.name]
        out += [s.values, s.lengths]
    return tuple(out)


def synthetic_batch(schema: FeatureSchema, n: int, *, seed: int = 0, max_len: int = 5) -> Batch:
    """A random valid batch of ``n`` rows (for tracing, verification and benchmarks)."""
    g = torch.Generator().manual_seed(seed)
    layout = FieldLayout.from_schema(schema)
    ids = torch.zeros((n, len(schema.categorical)), dtype=torch.int64)
    for j, f in enumerate(schema.categorical):
        size = layout.owner_size[layout.field_owner[f.name]]
        ids[:, j] = torch.randint(0, size, (n,), generator=g) + layout.offset(f.name)
    dense = torch.randn((n, len(schema.numeric)), generator=g)
    seqs = {}
    for f in schema.sequences:
        size = layout.owner_size[layout.field_owner[f.name]]
        lengths = torch.randint(0, max_len + 1, (n,), generator=g)
        lengths[0] = max_len
        L = max(int(lengths.max()), 1)
        vals = torch.randint(2, max(size, 3), (n, L), generator=g)
        mask = torch.arange(L)[None, :] < lengths[:, None]
        vals = torch.where(mask, vals, torch.zeros_like(vals)) + layout.offset(f.name)
        seqs[f.name] = SequenceBatch(vals, lengths)
    domain = None
    if schema.domain is not None:
        domain = torch.randint(0, max(schema.num_domains or 1, 1), (n,), generator=g)
    return Batch(ids=ids, dense=dense, sequences=seqs, domain=domain)


def _eager_probs(model: nn.Module, schema: FeatureSchema, batch: Batch) -> np.ndarray:
    with torch.inference_mode():
        out = model(batch)
        return torch.sigmoid(torch.stack([out.logits[t].reshape(-1) for t in schema.task_names], 1)).numpy()


def _verify_batches(schema: FeatureSchema) -> list[Batch]:
    # Sizes and sequence lengths other than the tracing example's: catches baked-in shapes.
    return [synthetic_batch(schema, 1, seed=11, max_len=2), synthetic_batch(schema, 37, seed=12, max_len=9)]


def _short(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".strip()
    first = msg.splitlines()[0] if msg else type(e).__name__
    return first[:500]


def _export_torchscript(wrapper: TensorModel, schema: FeatureSchema, path: Path) -> tuple[bool, str | None]:
    example = batch_tensors(synthetic_batch(schema, 8, seed=1), schema)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                traced = torch.jit.trace(wrapper, example, check_trace=False)
            traced = torch.jit.freeze(traced.eval()) if hasattr(torch.jit, "freeze") else traced
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
        for b in _verify_batches(schema):
            with torch.no_grad():
                got = loaded(*batch_tensors(b, schema)).numpy()
            want = _eager_probs(wrapper.model, schema, b)
            diff = float(np.abs(got - want).max()) if want.size else 0.0
            if got.shape != want.shape or not diff <= VERIFY_TOL:
                raise RuntimeError(f"traced scores differ from eager on a batch of {len(b)} (max abs diff {diff:.3g})")
    except Exception as e:  # noqa: BLE001 - any failure means "no TorchScript for this model"
        path.unlink(missing_ok=True)
        return False, _short(e)
    return True, None


def _export_onnx(wrapper: TensorModel, schema: FeatureSchema, path: Path) -> tuple[bool, str | None]:
    names = input_names(schema)
    dyn: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names}
    for f in schema.sequences:
        dyn[f"{f.name}.values"] = {0: "batch", 1: f"{f.name}_len"}
    dyn["probs"] = {0: "batch"}
    example = batch_tensors(synthetic_batch(schema, 8, seed=1), schema)
    try:
        import onnxruntime as ort

        sink = io.StringIO()
        with warnings.catch_warnings(), redirect_stdout(sink), redirect_stderr(sink):
            warnings.simplefilter("ignore")
            with torch.no_grad():
                torch.onnx.export(
                    wrapper,
                    example,
                    str(path),
                    input_names=names,
                    output_names=["probs"],
                    dynamic_axes=dyn,
                    opset_version=17,
                    dynamo=False,
                )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed_names = [i.name for i in sess.get_inputs()]
        for b in _verify_batches(schema):
            feed = {n: t.numpy() for n, t in zip(names, batch_tensors(b, schema)) if n in feed_names}
            got = sess.run(["probs"], feed)[0]
            want = _eager_probs(wrapper.model, schema, b)
            diff = float(np.abs(got - want).max()) if want.size else 0.0
            if got.shape != want.shape or not diff <= VERIFY_TOL:
                raise RuntimeError(f"ONNX Runtime scores differ from eager on a batch of {len(b)} (max abs diff {diff:.3g})")
    except Exception as e:  # noqa: BLE001 - any failure means "no ONNX for this model"
        path.unlink(missing_ok=True)
        return False, _short(e)
    return True, None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_hash(files: dict[str, str]) -> str:
    """One sha256 over the sorted (file name, file hash) pairs."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest()


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    onnx: bool = True,
    torchscript: bool = True,
    benchmark: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the serving bundle of the finished run ``run_dir`` to ``out_dir``; returns its path.

    ``onnx`` / ``torchscript`` turn those exports off; ``benchmark`` times every working backend
    (batch of 1 and of 256) so :class:`~ctrkit.serve.predictor.Predictor` can default to the
    fastest. ``out_dir`` must not exist unless ``overwrite``.
    """
    import yaml

    from ctrkit.models.registry import build_model

    run = Path(run_dir)
    for name in ("config.yaml", "schema.json", "encoders.json", "best_model.pt"):
        if not (run / name).exists():
            raise FileNotFoundError(f"{run}: not a finished run (no {name})")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    model_name = cfg["model"]["name"]
    model_params = cfg["model"].get("params") or {}
    schema = FeatureSchema.from_json(run / "schema.json")
    state = torch.load(run / "best_model.pt", weights_only=True, map_location="cpu")
    model = build_model(model_name, schema, model_params)
    model.load_state_dict(state)
    model.eval()
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        shutil.copyfile(run / "schema.json", tmp / "schema.json")
        shutil.copyfile(run / "encoders.json", tmp / "encoders.json")
        torch.save(model.state_dict(), tmp / "model.pt")
        wrapper = TensorModel(model, schema).eval()
        backends: dict[str, dict[str, Any]] = {"eager": {"ok": True, "file": "model.pt"}}
        if torchscript:
            ok, why = _export_torchscript(wrapper, schema, tmp / "model.ts")
            backends["torchscript"] = {"ok": ok, "file": "model.ts" if ok else None, "error": why}
        else:
            backends["torchscript"] = {"ok": False, "file": None, "error": "not requested"}
        if onnx:
            ok, why = _export_onnx(wrapper, schema, tmp / "model.onnx")
            backends["onnx"] = {"ok": ok, "file": "model.onnx" if ok else None, "error": why}
        else:
            backends["onnx"] = {"ok": False, "file": None, "error": "not requested"}
        files = {n: file_sha256(tmp / n) for n in HASHED_FILES if (tmp / n).exists()}
        meta: dict[str, Any] = {
            "bundle_format": BUNDLE_FORMAT,
            "model": model_name,
            "model_params": model_params,
            "dataset": metrics.get("dataset") or (cfg.get("dataset") or {}).get("name"),
            "tasks": schema.task_names,
            "metrics": metrics,
            "ctrkit_version": __version__,
            "torch_version": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source_run": str(run.resolve()),
            "inputs": input_names(schema),
            "backends": backends,
            "files": files,
            "bundle_hash": bundle_hash(files),
        }
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        if benchmark:
            from ctrkit.serve.predictor import Predictor

            timings = {}
            for name, info in backends.items():
                if info["ok"]:
                    timings[name] = Predictor.load(tmp, backend=name).time_backend()
            meta["latency_ms"] = timings
            if timings:
                # Serving is dominated by small batches: rank by single-row latency, then batch.
                meta["default_backend"] = min(timings, key=lambda b: (timings[b]["batch_1"], timings[b]["batch_256"]))
        meta.setdefault("default_backend", "torchscript" if backends["torchscript"]["ok"] else "eager")
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        trash = None
        if out.exists():
            trash = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(out, trash)
        os.replace(tmp, out)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = ["TensorModel", "batch_tensors", "export_run", "input_names", "synthetic_batch"]

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
    model.int8.onnx  with ``quantize="int8"``: ``model.onnx`` with int8 dynamically quantized
                     MatMul/Gemm weights (ONNX Runtime ``quantize_dynamic``)
    model.int8.ts    with ``quantize="int8"``: TorchScript of the model with every ``nn.Linear``
                     replaced by torch's dynamically quantized int8 Linear (fbgemm)

Portable forms take plain tensors, ``ids (B, F) int64`` (fused-table offsets applied), ``dense
(B, N) float32``, optionally ``domain (B,) int64``, then ``values (B, L) int64`` and ``lengths
(B,) int64`` per sequence field, and return ``(B, T)`` probabilities, one column per task.

Every portable form is verified after export against the eager model on batches of other sizes
(and other sequence lengths) than the tracing example; one that differs by more than
``VERIFY_TOL`` is dropped and the reason recorded in ``metadata.json``.

Quantized forms cannot reproduce the fp32 scores to ``VERIFY_TOL``: they are checked against
``QUANT_SANITY_TOL`` (a bound that catches a broken export, not rounding), and their real cost is
measured on the run's held-out rows (the test split of its store, when the store is still there):
test AUC and the largest probability difference against fp32, recorded in ``metadata.json``
``quantization``. Exporting with ``quantize`` makes the fastest quantized backend the default
(the caller asked for the trade); without it nothing quantized is written.

The bundle is written into a temporary directory next to ``out_dir`` and renamed into place when
complete, so a crash never leaves a half-written bundle that looks finished.
"""

from __future__ import annotations

import dataclasses
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
from ctrkit.data.store import replace_dir
from ctrkit.schema import FeatureSchema

BUNDLE_FORMAT = 1
#: Largest |portable - eager| probability difference accepted when verifying an export.
VERIFY_TOL = 1e-5
#: Files whose content the bundle hash covers (metadata.json holds the hashes, so not itself).
HASHED_FILES = ("schema.json", "encoders.json", "model.pt", "model.ts", "model.onnx", "model.int8.onnx", "model.int8.ts")
#: Quantization modes of :func:`export_run`.
QUANTIZE_MODES = ("int8",)
#: Backends a ``quantize="int8"`` export adds (name -> file).
INT8_BACKENDS = {"onnx_int8": "model.int8.onnx", "torchscript_int8": "model.int8.ts"}
#: Largest |int8 - fp32| probability difference on the random verification batches; above it the
#: quantized form is dropped as broken. Rounding of 8-bit weights and activations moves trained
#: CTR scores by ~1e-3; this bound is an order of magnitude above that.
QUANT_SANITY_TOL = 0.05
#: Held-out rows scored to measure the cost of quantization (the head of the test split).
QUANT_EVAL_ROWS = 200_000


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


def batch_tensors(batch: Batch, schema: FeatureSchema, *, full_length: bool = False) -> tuple[torch.Tensor, ...]:
    """The portable model's positional inputs for ``batch`` (``full_length``: sequences padded to
    their ``max_len``, as a model exported with ``export_full_length`` takes them)."""
    if full_length:
        batch = pad_sequences(batch, schema)
    out = [batch.ids, batch.dense]
    if schema.domain is not None:
        if batch.domain is None:
            raise ValueError("the schema has a domain column but the batch has no domain ids")
        out.append(batch.domain)
    for f in schema.sequences:
        s = batch.sequences[f.name]
        out += [s.values, s.lengths]
    return tuple(out)


def pad_sequences(batch: Batch, schema: FeatureSchema) -> Batch:
    """``batch`` with every sequence field right-padded to its schema ``max_len`` (with the
    owner's padding row, which ``lengths`` masks): the input of a model exported with
    ``export_full_length``. Rows are never truncated here (the encoder already cut them to
    ``max_len``)."""
    if not schema.sequences:
        return batch
    layout = FieldLayout.from_schema(schema)
    seqs = dict(batch.sequences)
    for f in schema.sequences:
        s = seqs[f.name]
        B, L = s.values.shape
        if L < f.max_len:
            pad = torch.full((B, f.max_len - L), layout.offset(f.name), dtype=s.values.dtype)
            seqs[f.name] = SequenceBatch(torch.cat([s.values, pad], 1), s.lengths)
    return dataclasses.replace(batch, sequences=seqs)


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


def _check_onnx(
    path: Path, names: list[str], schema: FeatureSchema, model: torch.nn.Module, label: str, tol: float, full_length: bool = False
) -> None:
    """Score the verification batches with the ONNX file at ``path`` (one ONNX Runtime thread) and
    compare with the eager model; raises naming ``label`` when they differ by more than ``tol``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed_names = [i.name for i in sess.get_inputs()]
    for b in _verify_batches(schema, full_length):
        feed = {n: t.numpy() for n, t in zip(names, batch_tensors(b, schema, full_length=full_length)) if n in feed_names}
        _max_diff(sess.run(["probs"], feed)[0], _eager_probs(model, schema, b), len(b), label, tol)


def _verify_batches(schema: FeatureSchema, full_length: bool = False) -> list[Batch]:
    # Sizes and sequence lengths other than the tracing example's: catches baked-in shapes.
    # (Within max_len when the form is fed padded to max_len.)
    long = min([9] + [f.max_len for f in schema.sequences]) if full_length else 9
    return [synthetic_batch(schema, 1, seed=11, max_len=min(2, long)), synthetic_batch(schema, 37, seed=12, max_len=long)]


def _short(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".strip()
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()] or [type(e).__name__]
    # TorchScript's interpreter errors open with a generic line and end with the real cause.
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return text[:500]


def _max_diff(got: np.ndarray, want: np.ndarray, n: int, what: str, tol: float) -> float:
    """max |got - want|; raises when the shapes differ or the difference exceeds ``tol``."""
    if got.shape != want.shape:
        raise RuntimeError(f"{what} output has shape {got.shape} for a batch of {n}, eager {want.shape}")
    diff = float(np.abs(got - want).max()) if want.size else 0.0
    if not diff <= tol:
        raise RuntimeError(f"{what} scores differ from eager on a batch of {n} (max abs diff {diff:.3g})")
    return diff


def _export_torchscript(
    wrapper: TensorModel,
    schema: FeatureSchema,
    path: Path,
    *,
    tol: float = VERIFY_TOL,
    reference: nn.Module | None = None,
    full_length: bool = False,
) -> tuple[bool, str | None]:
    """Trace ``wrapper`` to ``path`` and check it against ``reference`` (default: the wrapped
    model) within ``tol`` on :func:`_verify_batches`."""
    example = batch_tensors(synthetic_batch(schema, 8, seed=1), schema, full_length=full_length)
    ref = reference if reference is not None else wrapper.model
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                traced = torch.jit.trace(wrapper, example, check_trace=False)
            traced = torch.jit.freeze(traced.eval()) if hasattr(torch.jit, "freeze") else traced
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
        for b in _verify_batches(schema, full_length):
            with torch.no_grad():
                got = loaded(*batch_tensors(b, schema, full_length=full_length)).numpy()
            _max_diff(got, _eager_probs(ref, schema, b), len(b), "traced", tol)
    except Exception as e:  # noqa: BLE001 - any failure means "no TorchScript for this model"
        path.unlink(missing_ok=True)
        return False, _short(e)
    return True, None


def _export_onnx(wrapper: TensorModel, schema: FeatureSchema, path: Path, full_length: bool = False) -> tuple[bool, str | None]:
    names = input_names(schema)
    dyn: dict[str, dict[int, str]] = {n: {0: "batch"} for n in names}
    for f in schema.sequences:
        dyn[f"{f.name}.values"] = {0: "batch", 1: f"{f.name}_len"}
    dyn["probs"] = {0: "batch"}
    example = batch_tensors(synthetic_batch(schema, 8, seed=1), schema, full_length=full_length)
    try:
        import onnxruntime  # noqa: F401 - without it there is no ONNX form to verify

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
        _check_onnx(path, names, schema, wrapper.model, "ONNX Runtime", VERIFY_TOL, full_length)
    except Exception as e:  # noqa: BLE001 - any failure means "no ONNX for this model"
        path.unlink(missing_ok=True)
        return False, _short(e)
    return True, None


def quantized_linear_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` as torch's dynamically quantized int8 Linear.

    Weights are int8 per output tensor (symmetric); activations are quantized per call from
    their observed range. The ``fbgemm`` engine is the x86 one: it keeps activations to 7 bits
    (``reduce_range``) so the AVX2 u8 x s8 multiply-add cannot saturate. Embedding tables stay
    fp32 (a lookup does no arithmetic worth saving)."""
    import copy

    from torch.ao.quantization import quantize_dynamic

    torch.backends.quantized.engine = "fbgemm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


def _export_torchscript_int8(model: nn.Module, schema: FeatureSchema, path: Path, full_length: bool = False) -> tuple[bool, str | None]:
    try:
        qmodel = quantized_linear_model(model)
    except Exception as e:  # noqa: BLE001 - no quantization support in this torch build
        return False, _short(e)
    return _export_torchscript(
        TensorModel(qmodel, schema).eval(), schema, path, tol=QUANT_SANITY_TOL, reference=model, full_length=full_length
    )


def _export_onnx_int8(
    model: nn.Module,
    schema: FeatureSchema,
    src: Path,
    path: Path,
    *,
    reduce_range: bool = True,
    per_channel: bool = False,
    full_length: bool = False,
) -> tuple[bool, str | None]:
    """``src`` (the fp32 ONNX) with int8 weights for every MatMul/Gemm, checked against eager.

    ONNX Runtime's dynamic quantization: weights int8 per tensor, activations uint8 quantized per
    call (``DynamicQuantizeLinear`` -> ``MatMulInteger``, fused by the session into
    ``DynamicQuantizeMatMul``). ``reduce_range`` keeps weights to 7 bits: without VNNI the AVX2
    u8 x s8 kernel sums pairs of products in int16, which full-range weights can saturate."""
    names = input_names(schema)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        sink = io.StringIO()
        with warnings.catch_warnings(), redirect_stdout(sink), redirect_stderr(sink):
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(src),
                str(path),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                reduce_range=reduce_range,
                per_channel=per_channel,
                extra_options={"MatMulConstBOnly": True},
            )
        _check_onnx(path, names, schema, model, "int8 ONNX Runtime", QUANT_SANITY_TOL, full_length)
    except Exception as e:  # noqa: BLE001 - any failure means "no int8 ONNX for this model"
        path.unlink(missing_ok=True)
        return False, _short(e)
    return True, None


def held_out_accuracy(run: Path, score: dict[str, Any], *, max_rows: int = QUANT_EVAL_ROWS) -> dict[str, Any] | None:
    """AUC per task and backend on the head of the run's test split, and each backend's largest
    probability difference against the first one (the fp32 reference).

    ``score`` maps a backend name to a function ``Batch -> (B, T)`` probabilities. None when the
    run's store is gone (a bundle can be exported from a run whose data was deleted)."""
    from ctrkit.data.loader import BatchLoader
    from ctrkit.data.store import Store
    from ctrkit.metrics import auc

    try:
        store = Store.open(json.loads((run / "store.json").read_text())["store"])
        if "test" not in store.splits:
            return None
        loader = BatchLoader(store, "test", 4096, prefetch=0)
    except Exception:  # noqa: BLE001 - no store, no measurement; the export itself is fine
        return None
    tasks = list(loader.task_names)
    probs: dict[str, list[np.ndarray]] = {name: [] for name in score}
    labels: list[np.ndarray] = []
    rows = 0
    for b in loader.epoch(0):
        if rows >= max_rows:
            break
        for name, fn in score.items():
            probs[name].append(fn(b))
        labels.append(np.stack([b.labels[t].numpy() for t in tasks], 1))
        rows += len(b)
    if not rows:
        return None
    y = np.concatenate(labels)
    p = {name: np.concatenate(v) for name, v in probs.items()}
    ref = next(iter(p))
    return {
        "split": "test",
        "rows": int(y.shape[0]),
        "reference": ref,
        "auc": {name: {t: auc(y[:, j], v[:, j]) for j, t in enumerate(tasks)} for name, v in p.items()},
        "max_abs_diff": {name: float(np.abs(v - p[ref]).max()) for name, v in p.items() if name != ref},
        "mean_abs_diff": {name: float(np.abs(v - p[ref]).mean()) for name, v in p.items() if name != ref},
    }


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
    quantize: str | None = None,
) -> Path:
    """Write the serving bundle of the finished run ``run_dir`` to ``out_dir``; returns its path.

    ``onnx`` / ``torchscript`` turn those exports off; ``benchmark`` times every working backend
    (batch of 1 and of 256) so :class:`~ctrkit.serve.predictor.Predictor` can default to the
    fastest. ``quantize="int8"`` adds the int8 forms (``onnx_int8`` from the fp32 ONNX,
    ``torchscript_int8``), measures their test AUC against fp32 on the run's held-out rows and
    makes the fastest of them the default backend. ``out_dir`` must not exist unless
    ``overwrite``.
    """
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES} or None, got {quantize!r}")
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
        full = bool(getattr(model, "export_full_length", False)) and bool(schema.sequences)
        backends: dict[str, dict[str, Any]] = {"eager": {"ok": True, "file": "model.pt"}}
        if torchscript:
            ok, why = _export_torchscript(wrapper, schema, tmp / "model.ts", full_length=full)
            backends["torchscript"] = {"ok": ok, "file": "model.ts" if ok else None, "error": why}
        else:
            backends["torchscript"] = {"ok": False, "file": None, "error": "not requested"}
        if onnx:
            ok, why = _export_onnx(wrapper, schema, tmp / "model.onnx", full)
            backends["onnx"] = {"ok": ok, "file": "model.onnx" if ok else None, "error": why}
        else:
            backends["onnx"] = {"ok": False, "file": None, "error": "not requested"}
        if quantize == "int8":
            if backends["onnx"]["ok"]:
                ok, why = _export_onnx_int8(model, schema, tmp / "model.onnx", tmp / INT8_BACKENDS["onnx_int8"], full_length=full)
            else:
                ok, why = False, f"needs the fp32 ONNX export ({backends['onnx']['error']})"
            backends["onnx_int8"] = {"ok": ok, "file": INT8_BACKENDS["onnx_int8"] if ok else None, "error": why, "quantized": "int8"}
            if torchscript:
                ok, why = _export_torchscript_int8(model, schema, tmp / INT8_BACKENDS["torchscript_int8"], full)
            else:
                ok, why = False, "not requested"
            backends["torchscript_int8"] = {
                "ok": ok, "file": INT8_BACKENDS["torchscript_int8"] if ok else None, "error": why, "quantized": "int8"
            }
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
            # Traced forms of this model take every sequence padded to its max_len.
            "pad_sequences_to_max_len": full,
            "backends": backends,
            "quantize": quantize,
            "files": files,
            "bundle_hash": bundle_hash(files),
        }
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        quantized = [n for n, info in backends.items() if info.get("quantized") and info["ok"]]
        if quantized:
            from ctrkit.serve.predictor import Predictor

            # fp32 first: it is the reference of the differences.
            scorers = {"eager": Predictor.load(tmp, backend="eager").predict_batch}
            scorers.update({n: Predictor.load(tmp, backend=n).predict_batch for n in quantized})
            meta["quantization"] = {
                "mode": quantize,
                "held_out": held_out_accuracy(run, scorers),
                "onnx_int8": "onnxruntime quantize_dynamic: MatMul/Gemm weights int8 per tensor, 7-bit range; activations uint8 per call",
                "torchscript_int8": "torch.ao quantize_dynamic (fbgemm): nn.Linear weights int8 per tensor; activations per call",
            }
        if benchmark:
            from ctrkit.serve.predictor import Predictor

            timings = {}
            for name, info in backends.items():
                if info["ok"]:
                    timings[name] = Predictor.load(tmp, backend=name).time_backend()
            meta["latency_ms"] = timings
            # With quantize, the caller asked for the int8 trade: the default is the fastest
            # quantized form. Serving is dominated by small batches: rank by single-row latency,
            # then batch.
            pool = [n for n in timings if n in quantized] or list(timings)
            if pool:
                meta["default_backend"] = min(pool, key=lambda b: (timings[b]["batch_1"], timings[b]["batch_256"]))
        if "default_backend" not in meta:
            order = [*quantized, "torchscript", "eager"]
            meta["default_backend"] = next(n for n in order if n == "eager" or backends.get(n, {}).get("ok"))
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = [
    "QUANTIZE_MODES",
    "TensorModel",
    "batch_tensors",
    "export_run",
    "held_out_accuracy",
    "input_names",
    "quantized_linear_model",
    "synthetic_batch",
]

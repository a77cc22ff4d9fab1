"""``ctrkit export`` and ``ctrkit serve``."""

from __future__ import annotations

import json
import sys

import click

from ctrkit.errors import CtrkitError


def _fail(e: Exception) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(2)


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--no-onnx", is_flag=True, help="Skip the ONNX export.")
@click.option("--no-torchscript", is_flag=True, help="Skip the TorchScript export.")
@click.option("--no-benchmark", is_flag=True, help="Do not time the backends (the default backend is then TorchScript, else eager).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (atomically).")
@click.option(
    "--quantize",
    type=click.Choice(["int8"]),
    default=None,
    help="Also write int8 dynamically quantized forms (onnx_int8, torchscript_int8), report their "
    "test AUC against fp32 on the run's held-out rows, and make the fastest of them the default backend.",
)
def export_cmd(run_dir: str, out: str, no_onnx: bool, no_torchscript: bool, no_benchmark: bool, overwrite: bool, quantize: str | None) -> None:
    """Export a finished RUN_DIR into a self-contained serving bundle OUT.

    The bundle holds the fitted schema and encoders, the weights, TorchScript and ONNX forms
    where the model allows (verified against the eager model), and metadata.json with metrics,
    versions and content hashes. It needs neither the training data nor the store.
    """
    from ctrkit.serve.export import export_run

    try:
        path = export_run(
            run_dir, out, onnx=not no_onnx, torchscript=not no_torchscript, benchmark=not no_benchmark,
            overwrite=overwrite, quantize=quantize,
        )
    except (CtrkitError, FileNotFoundError, FileExistsError, ValueError) as e:
        _fail(e)
        return
    meta = json.loads((path / "metadata.json").read_text())
    for name, info in meta["backends"].items():
        status = "ok" if info["ok"] else f"unavailable ({info.get('error')})"
        lat = meta.get("latency_ms", {}).get(name)
        extra = f"  {lat['batch_1']:.3f} ms/row, {lat['batch_256']:.3f} ms/256 rows" if lat else ""
        click.echo(f"{name:<17} {status}{extra}")
    held = (meta.get("quantization") or {}).get("held_out")
    if held:
        ref = held["reference"]
        for name, aucs in held["auc"].items():
            if name == ref:
                continue
            for task, a in aucs.items():
                base = held["auc"][ref][task]
                click.echo(
                    f"{name}: test AUC {a:.5f} vs fp32 {base:.5f} ({a - base:+.5f}) on {held['rows']} held-out rows, "
                    f"max |p - p_fp32| {held['max_abs_diff'][name]:.2e}" + (f" [{task}]" if len(aucs) > 1 else "")
                )
    elif meta.get("quantize"):
        click.echo("quantization cost not measured: the run's store (its test split) is not available")
    click.echo(f"default backend: {meta['default_backend']}")
    click.echo(f"bundle: {path}  (hash {meta['bundle_hash'][:16]})")


@click.command("serve")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--backend",
    type=click.Choice(["auto", "eager", "torchscript", "onnx", "onnx_int8", "torchscript_int8"]),
    default="auto",
    show_default=True,
    help="auto: the bundle's default (its fastest measured backend; int8 if exported with --quantize).",
)
@click.option("--missing", type=click.Choice(["fill", "error"]), default="fill", show_default=True, help="A field absent from a record: take the schema's fill value, or answer 422.")
@click.option("--unknown", type=click.Choice(["reject", "ignore"]), default="reject", show_default=True, help="A field the model does not read: answer 422 naming it, or ignore it.")
@click.option("--max-batch", default=10_000, show_default=True, type=int, help="Most records per request (more: 413).")
@click.option("--threads", default=None, type=int, help="intra-op threads of torch and ONNX Runtime (default: torch's setting, ONNX Runtime 1).")
@click.option("--log-level", default="info", show_default=True)
def serve_cmd(bundle: str, host: str, port: int, backend: str, missing: str, unknown: str, max_batch: int, threads: int | None, log_level: str) -> None:
    """Serve a BUNDLE over HTTP: POST /predict, POST /rank, GET /health, /metadata, /metrics,
    POST /reload (and SIGHUP reloads the bundle path)."""
    from ctrkit.serve.app import serve

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        serve(bundle, host=host, port=port, backend=backend, missing=missing, unknown=unknown, max_batch=max_batch,
              threads=threads, log_level=log_level)
    except CtrkitError as e:
        _fail(e)

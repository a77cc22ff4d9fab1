"""Serving: export a run into a self-contained bundle, score records with it, serve it over HTTP.

* :func:`ctrkit.serve.export.export_run` - run directory -> bundle (TorchScript / ONNX / state dict;
  int8 dynamically quantized forms with ``quantize="int8"``)
* :class:`Predictor` - bundle -> ``predict(records)``
* :mod:`ctrkit.serve.app` - FastAPI app (``ctrkit serve``): /predict, /rank, /health, /metadata,
  /metrics, /reload
* :mod:`ctrkit.serve.auction` - generalised second-price position auction
"""

from ctrkit.serve.predictor import BundleError, InputError, Predictor

__all__ = ["BundleError", "InputError", "Predictor", "export_run"]


def __getattr__(name: str):
    if name == "export_run":
        from ctrkit.serve.export import export_run

        return export_run
    raise AttributeError(f"module 'ctrkit.serve' has no attribute '{name}'")

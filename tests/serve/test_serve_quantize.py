"""int8 export (``quantize="int8"``): the quantized forms load, stay close to fp32, report their
held-out cost, become the default; without ``quantize`` nothing quantized is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctrkit.serve import Predictor
from ctrkit.serve.export import INT8_BACKENDS, QUANT_SANITY_TOL, export_run, synthetic_batch


@pytest.fixture(scope="module")
def int8_bundle(deepfm_run, tmp_path_factory):
    return export_run(deepfm_run, tmp_path_factory.mktemp("int8") / "deepfm-int8", quantize="int8")


def test_int8_bundle_layout_and_metadata(int8_bundle):
    meta = json.loads((int8_bundle / "metadata.json").read_text())
    assert meta["quantize"] == "int8"
    for name, file in INT8_BACKENDS.items():
        info = meta["backends"][name]
        assert info["ok"], info
        assert info["file"] == file and info["quantized"] == "int8"
        assert (int8_bundle / file).is_file() and file in meta["files"]
        assert name in meta["latency_ms"]
    # The caller asked for int8: the default is a quantized backend; fp32 ones stay loadable.
    assert meta["default_backend"] in INT8_BACKENDS
    assert Predictor.load(int8_bundle).backend == meta["default_backend"]
    assert Predictor.load(int8_bundle, backend="onnx").backend == "onnx"


def test_int8_held_out_cost_is_recorded(int8_bundle, deepfm_run):
    held = json.loads((int8_bundle / "metadata.json").read_text())["quantization"]["held_out"]
    metrics = json.loads((deepfm_run / "metrics.json").read_text())
    assert held["split"] == "test" and held["reference"] == "eager"
    assert held["rows"] > 0
    # The fp32 reference reproduces the run's own test AUC.
    assert held["auc"]["eager"]["click"] == pytest.approx(metrics["test"]["click"]["auc"], abs=1e-9)
    for name in INT8_BACKENDS:
        assert 0 < held["max_abs_diff"][name] < QUANT_SANITY_TOL
        assert held["mean_abs_diff"][name] <= held["max_abs_diff"][name]
        assert abs(held["auc"][name]["click"] - held["auc"]["eager"]["click"]) < 0.02


@pytest.mark.parametrize("backend", sorted(INT8_BACKENDS))
def test_int8_backends_score_close_to_fp32(int8_bundle, backend):
    ref = Predictor.load(int8_bundle, backend="eager")
    p = Predictor.load(int8_bundle, backend=backend)
    for n, L in ((1, 0), (1, 6), (300, 6)):
        batch = synthetic_batch(ref.schema, n, seed=n + L, max_len=L)
        got = p.predict_batch(batch)
        assert got.shape == (n, 1) and got.dtype == np.float32
        assert np.abs(got - ref.predict_batch(batch)).max() < QUANT_SANITY_TOL
    # Records go through the same encoders as every other backend.
    rec = {"I1": 3.0, "C1": "x", "hist_items": ["i1", "i2"]}
    assert 0 < p.predict([rec])["click"][0] < 1


def test_no_quantize_writes_nothing_quantized(deepfm_bundle):
    meta = json.loads((deepfm_bundle / "metadata.json").read_text())
    assert meta["quantize"] is None and "quantization" not in meta
    for name, file in INT8_BACKENDS.items():
        assert name not in meta["backends"]
        assert not (deepfm_bundle / file).exists()
    assert meta["default_backend"] in ("eager", "torchscript", "onnx")


def test_export_cli_quantize(deepfm_run, tmp_path):
    from click.testing import CliRunner

    from ctrkit.commands.serve import export_cmd

    res = CliRunner().invoke(export_cmd, [str(deepfm_run), str(tmp_path / "q"), "--quantize", "int8", "--no-benchmark"])
    assert res.exit_code == 0, res.output
    assert "onnx_int8" in res.output and "test AUC" in res.output and "vs fp32" in res.output
    meta = json.loads((tmp_path / "q" / "metadata.json").read_text())
    assert meta["default_backend"] in INT8_BACKENDS
    with pytest.raises(ValueError, match="quantize"):
        export_run(deepfm_run, tmp_path / "bad", quantize="int4")

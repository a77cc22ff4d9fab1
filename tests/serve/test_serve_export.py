"""Export round trip and the Predictor against the run's offline evaluation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
import torch

from ctrkit.serve import BundleError, InputError, Predictor
from ctrkit.serve.export import synthetic_batch
from conftest import json_records


def _raw_test(data) -> pl.DataFrame:
    # Read like the training pipeline: everything as text, empty cells null.
    return pl.read_csv(data / "test.tsv", separator="\t", infer_schema=False)


def _offline_probs(run_dir) -> np.ndarray:
    from ctrkit.data.loader import BatchLoader
    from ctrkit.metrics import sigmoid
    from ctrkit.train.run import load_run

    _, model, store = load_run(run_dir)
    out = []
    with torch.inference_mode():
        for b in BatchLoader(store, "test", 1024, prefetch=0).epoch(0):
            out.append(model(b).logits["click"].float().numpy())
    return sigmoid(np.concatenate(out))


def test_bundle_layout_and_metadata(deepfm_bundle, deepfm_run):
    for name in ("metadata.json", "schema.json", "encoders.json", "model.pt", "model.ts", "model.onnx"):
        assert (deepfm_bundle / name).is_file(), name
    meta = json.loads((deepfm_bundle / "metadata.json").read_text())
    assert meta["model"] == "DeepFM" and meta["tasks"] == ["click"]
    assert meta["metrics"] == json.loads((deepfm_run / "metrics.json").read_text())
    assert meta["backends"]["torchscript"]["ok"] and meta["backends"]["onnx"]["ok"], meta["backends"]
    assert meta["default_backend"] in ("eager", "torchscript", "onnx")
    assert set(meta["latency_ms"]) == {"eager", "torchscript", "onnx"}
    assert len(meta["bundle_hash"]) == 64 and set(meta["files"]) >= {"model.pt", "encoders.json", "schema.json"}
    # No temporary directories left beside the bundle.
    assert [p.name for p in deepfm_bundle.parent.iterdir()] == [deepfm_bundle.name]


def test_portable_backends_equal_eager(deepfm_bundle):
    preds = {b: Predictor.load(deepfm_bundle, backend=b) for b in ("eager", "torchscript", "onnx")}
    for n, L in ((1, 0), (1, 6), (300, 6), (64, 3)):
        batch = synthetic_batch(preds["eager"].schema, n, seed=n + L, max_len=L)
        ref = preds["eager"].predict_batch(batch)
        for b in ("torchscript", "onnx"):
            got = preds[b].predict_batch(batch)
            assert got.shape == (n, 1)
            assert np.abs(got - ref).max() < 1e-5, (b, n, L)


def test_bundle_loads_without_the_run_or_store(deepfm_bundle, deepfm_run, serve_data, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(deepfm_bundle, moved)
    store = deepfm_run.parent / "store"
    hidden = tmp_path / "hidden-store"
    shutil.move(str(store), str(hidden))  # the store must not be needed
    try:
        p = Predictor.load(moved)
        out = p.predict(json_records(_raw_test(serve_data).head(5)))
        assert out["click"].shape == (5,) and np.all((out["click"] > 0) & (out["click"] < 1))
    finally:
        shutil.move(str(hidden), str(store))


@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnx"])
def test_predictor_equals_offline_evaluation_on_the_whole_test_split(deepfm_bundle, deepfm_run, serve_data, backend):
    from ctrkit.metrics import auc

    ref = _offline_probs(deepfm_run)
    raw = _raw_test(serve_data)
    assert raw.height == ref.size
    y = raw["click"].cast(pl.Float64).to_numpy()
    # The reference is the run's offline evaluation: it reproduces metrics.json's test AUC.
    assert auc(y, ref) == pytest.approx(json.loads((deepfm_run / "metrics.json").read_text())["test"]["click"]["auc"], abs=1e-9)
    p = Predictor.load(deepfm_bundle, backend=backend)
    got = p.predict(json_records(raw))["click"]
    assert np.abs(got - ref).max() < 1e-5
    # The same rows as a Polars frame (raw strings), a pyarrow Table, and in small batches.
    assert np.abs(p.predict(raw)["click"] - ref).max() < 1e-5
    assert np.abs(p.predict(raw.to_arrow())["click"] - ref).max() < 1e-5
    recs = json_records(raw)
    small = np.concatenate([p.predict(recs[i : i + 7])["click"] for i in range(0, len(recs), 7)])
    assert np.abs(small - ref).max() < 1e-5
    frame = p.predict(raw.head(3), as_frame=True)
    assert isinstance(frame, pl.DataFrame) and frame.columns == ["p_click"]


def test_sequence_lists_and_delimited_strings_agree(deepfm_bundle):
    p = Predictor.load(deepfm_bundle, backend="eager")
    base = {"I1": 3, "I2": "4", "I3": None, "C1": "x", "C2": "y", "C3": "z", "C4": "w", "C5": "v",
            "user_id": "u1", "item_id": "i3", "item_cat": "cat1"}
    a = p.predict([{**base, "hist_items": ["i1", "i2"], "hist_cats": ["cat1", "cat2"]}])["click"]
    b = p.predict([{**base, "hist_items": "i1^i2", "hist_cats": "cat1^cat2"}])["click"]
    assert a == pytest.approx(b, abs=0)
    # Unseen categories and an empty history are fine (OOV / empty sequence).
    c = p.predict([{**base, "C1": "never-seen", "hist_items": [], "hist_cats": []}])["click"]
    assert 0 < c[0] < 1


def test_missing_and_unknown_fields(deepfm_bundle, serve_data):
    rec = json_records(_raw_test(serve_data).head(1))[0]
    partial = {k: v for k, v in rec.items() if k != "C3"}
    p_fill = Predictor.load(deepfm_bundle, backend="eager")
    filled = p_fill.predict([partial])["click"]
    explicit = p_fill.predict([{**partial, "C3": ""}])["click"]  # C3's fill value is ""
    assert filled == pytest.approx(explicit, abs=0)
    p_err = Predictor.load(deepfm_bundle, backend="eager", missing="error", unknown="error")
    with pytest.raises(InputError, match="C3") as ei:
        p_err.predict([rec, partial])
    assert ei.value.field == "C3" and ei.value.record == 1
    with pytest.raises(InputError, match="bogus"):
        p_err.predict([{**rec, "bogus": 1}])
    p_err.predict([rec])  # labels (click) and the group column are known, not unknown


def test_bad_values_name_the_field(deepfm_bundle, serve_data):
    rec = json_records(_raw_test(serve_data).head(1))[0]
    p = Predictor.load(deepfm_bundle, backend="eager")
    with pytest.raises(InputError, match="I2") as ei:
        p.predict([rec, {**rec, "I2": "abc"}])
    assert ei.value.record == 1
    for field, value in (("I1", [1, 2]), ("C1", {"a": 1}), ("hist_items", 5), ("I3", True), ("I1", float("nan")), ("I2", float("inf"))):
        with pytest.raises(InputError) as ei:
            p.predict([{**rec, field: value}])
        assert ei.value.field == field
    with pytest.raises(InputError):
        p.predict(["not a dict"])
    assert p.predict([])["click"].shape == (0,)


def test_corrupted_bundle_is_refused(deepfm_bundle, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(deepfm_bundle, bad)
    (bad / "encoders.json").write_text((bad / "encoders.json").read_text() + " ")
    with pytest.raises(BundleError, match="encoders.json"):
        Predictor.load(bad)
    with pytest.raises(BundleError, match="metadata.json"):
        Predictor.load(tmp_path)


def test_export_cli_and_other_models(serve_data, tmp_path):
    from click.testing import CliRunner

    from conftest import train_run
    from ctrkit.commands.serve import export_cmd

    run = train_run(serve_data, tmp_path, "DCNv2", {"parallel_dnn_hidden_units": [16], "num_cross_layers": 2})
    res = CliRunner().invoke(export_cmd, [str(run), str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "default backend" in res.output
    res = CliRunner().invoke(export_cmd, [str(run), str(tmp_path / "b")])
    assert res.exit_code == 2 and "exists" in res.output
    p = Predictor.load(tmp_path / "b", backend="eager")
    batch = synthetic_batch(p.schema, 50, seed=1)
    ref = p.predict_batch(batch)
    for b in ("torchscript", "onnx"):
        if p.metadata["backends"][b]["ok"]:
            assert np.abs(Predictor.load(tmp_path / "b", backend=b).predict_batch(batch) - ref).max() < 1e-5


@pytest.mark.parametrize("model", ["DIN", "SDIM", "DIEN", "ETA"])
def test_behaviour_sequence_models_serve_json_lists(serve_data, tmp_path, model):
    # A behaviour-sequence model exported and served: JSON records with the histories as lists
    # score like offline evaluation of the trained run, on every backend the export kept.
    from conftest import train_run
    from ctrkit.models.registry import get_model_info
    from ctrkit.serve.export import export_run

    run = train_run(serve_data, tmp_path, model, dict(get_model_info(model).cls.test_params))
    bundle = export_run(run, tmp_path / "bundle")
    meta = json.loads((bundle / "metadata.json").read_text())
    kept = ["eager"] + [b for b, v in meta["backends"].items() if v.get("ok") and not b.endswith("_int8") and b != "eager"]
    # DIN's pooling is traced in a dense form ONNX can express; DIEN and ETA are traced and served
    # with histories padded to max_len (their traced loop / top-k size is the traced length).
    assert "torchscript" in kept and "onnx" in kept, meta["backends"]
    assert meta["pad_sequences_to_max_len"] == (model in ("DIEN", "ETA"))
    ref = _offline_probs(run)
    recs = json_records(_raw_test(serve_data))
    for backend in kept:
        got = Predictor.load(bundle, backend=backend).predict(recs)["click"]
        assert np.abs(got - ref).max() < 1e-5, backend


@pytest.mark.parametrize("model", ["FinalMLP", "FFM", "ONN", "MaskNet", "FGCNN", "HFM", "AutoInt+", "DESTINE", "InterHAt", "AFN+"])
def test_models_with_export_pitfalls_keep_every_form(serve_data, tmp_path, model):
    # Each once lost a form: a batch size baked in by tracing (FinalMLP), buffers sharing storage
    # (FFM, ONN), a traced layer_norm shape (MaskNet), triu_indices in forward (FGCNN), the FFT
    # (HFM). The attention models call C kernels in eager mode, which tracing cannot follow
    # (AutoInt+, DESTINE, InterHAt); AFN+ permutes a weight in forward. The export's own check
    # compares every kept form with eager.
    from conftest import train_run
    from ctrkit.models.registry import get_model_info
    from ctrkit.serve.export import export_run

    run = train_run(serve_data, tmp_path, model, dict(get_model_info(model).cls.test_params))
    meta = json.loads((export_run(run, tmp_path / "bundle", benchmark=False) / "metadata.json").read_text())
    assert meta["backends"]["torchscript"]["ok"] and meta["backends"]["onnx"]["ok"], meta["backends"]

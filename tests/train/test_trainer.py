"""The training engine end to end on small synthetic data: run directory, reproducibility,
crash-and-resume, strict configs, evaluate/predict without the original config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ctrkit.config import RunConfig
from ctrkit.data.synthetic import SynthConfig, synthesize
from ctrkit.errors import ConfigError
from ctrkit.train.allocator import reuse_wanted
from ctrkit.train.run import train
from ctrkit.train.trainer import monitor_value


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("synth") / "data"
    synthesize(d, SynthConfig(rows=20_000, num_numeric=3, num_categorical=6, signal_scale=2.0, seed=7))
    return d


def run_cfg(data: Path, root: Path, **training) -> dict:
    t = {"epochs": 3, "batch_size": 512, "learning_rate": 3e-3, "seed": 11, "progress": False, "threads": 1, "prefetch": 0}
    t.update(training)
    return {
        "dataset": {"name": "generic", "source": str(data), "store": str(root / "store")},
        "model": {"name": "DNN", "params": {"embedding_dim": 8, "hidden_units": [32, 16], "net_dropout": 0.1}},
        "training": t,
        "run_dir": str(root / "run"),
    }


def test_run_directory_holds_everything(synth_dir, tmp_path):
    res = train(run_cfg(synth_dir, tmp_path))
    for name in ("config.yaml", "schema.json", "encoders.json", "train.log", "metrics.json", "history.json", "best_model.pt", "checkpoint.pt"):
        assert (res.run_dir / name).exists(), name
    m = json.loads((res.run_dir / "metrics.json").read_text())
    assert m["test"]["click"]["auc"] > 0.6
    assert m["threads"] == 1 and m["parameters"] > 0
    assert m["prepare_seconds"] > 0  # the store was built inside this run
    header = (res.run_dir / "train.log").read_text().splitlines()[0]
    assert "threads torch=1" in header
    assert f"malloc reuse {'on' if reuse_wanted() else 'off'}" in header
    hist = json.loads((res.run_dir / "history.json").read_text())
    assert [h["epoch"] for h in hist] == list(range(1, len(hist) + 1))


def test_same_config_and_seed_give_the_same_metrics(synth_dir, tmp_path):
    a = train(run_cfg(synth_dir, tmp_path / "a"))
    b = train(run_cfg(synth_dir, tmp_path / "b"))
    assert a.metrics["test"] == b.metrics["test"]
    c = train(run_cfg(synth_dir, tmp_path / "c", seed=12))
    assert c.metrics["test"] != a.metrics["test"]


@pytest.mark.parametrize("mode,opt", [("dense", "adam"), ("sparse", "adagrad")])
def test_embedding_modes_train(synth_dir, tmp_path, mode, opt):
    res = train(run_cfg(synth_dir, tmp_path, embedding_mode=mode, embedding_optimizer=opt, embedding_regularizer=0.01, epochs=2))
    assert res.metrics["test"]["click"]["auc"] > 0.6


def test_bars_protocol_reduces_lr_and_stops(synth_dir, tmp_path):
    # A learning rate this large overfits at once: validation AUC stops improving, so the
    # protocol must divide the learning rate and stop after `patience` strikes.
    res = train(run_cfg(synth_dir, tmp_path, epochs=30, learning_rate=0.05, patience=2))
    hist = json.loads((res.run_dir / "history.json").read_text())
    strikes = [h for h in hist if "lr" in h]
    assert len(hist) < 30
    assert strikes and strikes[0]["lr"] == pytest.approx(0.005)
    assert res.metrics["best_epoch"] == max(hist, key=lambda h: h["monitor"])["epoch"]


def test_optimizer_import_is_warmed_in_the_background():
    # In a fresh interpreter torch._dynamo is not imported yet: a thread imports it; once it is
    # imported there is nothing to warm.
    code = (
        "import sys; from ctrkit.train.run import _warm_optimizer_import as w\n"
        "assert 'torch._dynamo' not in sys.modules\n"
        "t = w(); t.join(); assert 'torch._dynamo' in sys.modules\n"
        "assert w() is None\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_valid_metrics_are_those_of_the_restored_best_model(synth_dir, tmp_path):
    # The run reports the validation metrics of the best epoch's evaluation instead of evaluating
    # the restored weights again: they must be exactly what a fresh evaluation of the run's best
    # model gives, also when later epochs were worse.
    from click.testing import CliRunner

    from ctrkit.cli import main

    res = train(run_cfg(synth_dir, tmp_path, epochs=30, learning_rate=0.05, patience=2))
    hist = json.loads((res.run_dir / "history.json").read_text())
    assert res.metrics["best_epoch"] < len(hist)
    assert res.metrics["valid"] == hist[res.metrics["best_epoch"] - 1]["valid"]
    assert res.metrics["valid_eval_samples_per_sec"] > 0
    out = CliRunner().invoke(main, ["evaluate", str(res.run_dir), "--split", "valid"])
    assert out.exit_code == 0, out.output
    fresh = json.loads(out.output)["valid"]["click"]
    for name in ("auc", "logloss"):
        assert fresh[name] == res.metrics["valid"]["click"][name], name


def test_killed_run_resumes_to_the_same_metrics(synth_dir, tmp_path):
    """SIGKILL a real training process mid-epoch, resume it, compare with an uninterrupted run."""
    cfg = run_cfg(synth_dir, tmp_path / "killed", epochs=3, batch_size=128, checkpoint_every_batches=5)
    ref = train(run_cfg(synth_dir, tmp_path / "ref", epochs=3, batch_size=128, checkpoint_every_batches=5))
    cfg_path = tmp_path / "killed.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, CTRKIT_TEST_STEP_DELAY="0.01")
    proc = subprocess.Popen([sys.executable, "-m", "ctrkit.cli", "train", str(cfg_path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "run" / "checkpoint.pt"
    deadline = time.time() + 120
    killed_at = None
    try:
        while time.time() < deadline and proc.poll() is None:
            if ckpt.exists():
                st = torch.load(ckpt, weights_only=False)["state"]
                if st["epoch"] >= 1 and st["batch"] > 0:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = (st["epoch"], st["batch"])
                    break
            time.sleep(0.01)
    finally:
        proc.wait(timeout=60)
    assert killed_at is not None, "training finished before it could be killed mid-epoch"
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "run" / "metrics.json").exists()
    resumed = train(None, resume=tmp_path / "killed" / "run")  # type: ignore[arg-type]
    assert resumed.metrics["test"] == ref.metrics["test"]
    assert resumed.metrics["best_epoch"] == ref.metrics["best_epoch"]


def test_evaluate_and_predict_need_only_the_run_dir(synth_dir, tmp_path):
    from click.testing import CliRunner

    from ctrkit.cli import main

    res = train(run_cfg(synth_dir, tmp_path, epochs=1))
    runner = CliRunner()
    out = runner.invoke(main, ["evaluate", str(res.run_dir), "--split", "test"])
    assert out.exit_code == 0, out.output
    ev = json.loads(out.output)["test"]["click"]
    assert ev["auc"] == pytest.approx(res.metrics["test"]["click"]["auc"], abs=1e-9)
    pred_path = tmp_path / "pred.csv"
    out = runner.invoke(main, ["predict", str(res.run_dir), str(synth_dir / "test.tsv"), "--out", str(pred_path)])
    assert out.exit_code == 0, out.output
    import polars as pl

    from ctrkit.metrics import auc, logloss

    p = pl.read_csv(pred_path)["p_click"].to_numpy()
    y = pl.read_csv(synth_dir / "test.tsv", separator="\t")["click"].to_numpy()
    # Offline scores of the raw file equal the evaluation of the encoded split.
    assert auc(y, p) == pytest.approx(ev["auc"], abs=1e-6)
    assert logloss(y, p) == pytest.approx(ev["logloss"], abs=1e-5)


def test_config_typos_name_the_key(tmp_path, synth_dir):
    base = run_cfg(synth_dir, tmp_path)
    bad = json.loads(json.dumps(base))
    bad["training"]["learning_rte"] = 0.1
    with pytest.raises(ConfigError, match="training.learning_rte"):
        RunConfig.from_dict(bad)
    bad = json.loads(json.dumps(base))
    bad["model"]["params"]["hiden_units"] = [3]
    with pytest.raises(ConfigError, match="model.params.hiden_units"):
        RunConfig.from_dict(bad)
    bad = json.loads(json.dumps(base))
    bad["training"]["batch_size"] = "big"
    with pytest.raises(ConfigError, match="training.batch_size"):
        RunConfig.from_dict(bad)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(base))
    cfg = RunConfig.from_yaml(p, ["training.batch_size=64", "model.params.hidden_units=[8]"])
    assert cfg.training.batch_size == 64 and cfg.model.params["hidden_units"] == [8]


def test_monitor_expressions():
    m = {"click": {"auc": 0.8, "logloss": 0.4}, "buy": {"auc": 0.6, "logloss": 0.2}}
    assert monitor_value("auc", m) == pytest.approx(0.7)
    assert monitor_value("click:auc", m) == pytest.approx(0.8)
    assert monitor_value("click:auc-logloss", m) == pytest.approx(0.4)
    assert monitor_value("0.25*click:auc+0.75*buy:auc", m) == pytest.approx(0.65)
    with pytest.raises(ValueError):
        monitor_value("click:accuracy", m)
    assert np.isfinite(monitor_value("logloss", m))


def test_ctrkit_train_is_callable(synth_dir, tmp_path):
    import ctrkit

    res = ctrkit.train(run_cfg(synth_dir, tmp_path, epochs=1))
    assert res.run_dir.exists() and "test" in res.metrics
    assert isinstance(ctrkit.RunConfig.from_dict(run_cfg(synth_dir, tmp_path)), RunConfig)


def test_per_domain_metrics(tmp_path):
    d = tmp_path / "dom"
    synthesize(d, SynthConfig(rows=6_000, num_numeric=2, num_categorical=6, domains=3, seed=3))
    cfg = run_cfg(d, tmp_path, epochs=1, monitor="domain_mean_auc")
    res = train(cfg)
    m = res.metrics["test"]["click"]
    assert set(m["domains"]) == {"0", "1", "2"}
    assert sum(v["rows"] for v in m["domains"].values()) == 600
    assert m["domain_mean_auc"] == pytest.approx(np.mean([v["auc"] for v in m["domains"].values()]))

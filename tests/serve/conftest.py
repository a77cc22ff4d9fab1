"""Shared fixtures of the serving tests: one tiny synthetic dataset (with sequences), a DeepFM run
trained for one epoch on it, and its exported bundle."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch

from ctrkit.data.synthetic import SynthConfig, synthesize

torch.set_num_threads(1)


def json_records(df: pl.DataFrame) -> list[dict]:
    """Rows of the serving dataset's raw test file as a JSON client sends them: numbers as
    numbers, sequences as lists."""
    recs = df.to_dicts()
    for r in recs:
        for k in ("I1", "I2", "I3"):
            if r[k] is not None:
                r[k] = float(r[k])
        for k in ("hist_items", "hist_cats"):
            r[k] = [t for t in (r[k] or "").split("^") if t]
    return recs


@pytest.fixture(scope="session")
def serve_data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("serve") / "data"
    synthesize(d, SynthConfig(rows=5000, num_numeric=3, num_categorical=5, sequence=True, sequence_length=6, signal_scale=2.0, seed=5))
    return d


def train_run(data: Path, root: Path, model: str, params: dict | None = None) -> Path:
    from ctrkit.train.run import train

    cfg = {
        "dataset": {"name": "generic", "source": str(data), "store": str(root / "store")},
        "model": {"name": model, "params": {"embedding_dim": 4, **(params or {})}},
        "training": {"epochs": 1, "batch_size": 256, "learning_rate": 3e-3, "seed": 3, "progress": False, "threads": 1, "prefetch": 0},
        "run_dir": str(root / f"run-{model}"),
    }
    return train(cfg).run_dir


@pytest.fixture(scope="session")
def deepfm_run(serve_data, tmp_path_factory) -> Path:
    return train_run(serve_data, tmp_path_factory.mktemp("runs"), "DeepFM", {"hidden_units": [16, 8]})


@pytest.fixture(scope="session")
def deepfm_bundle(deepfm_run, tmp_path_factory) -> Path:
    from ctrkit.serve.export import export_run

    return export_run(deepfm_run, tmp_path_factory.mktemp("bundles") / "deepfm")

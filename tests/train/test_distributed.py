"""Data-parallel gradient averaging: two gloo ranks with batch b train exactly like one process
with batch 2b (dense MLP weights and row-sparse embeddings alike)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ctrkit.batch import Batch
from ctrkit.config import TrainingConfig
from ctrkit.models.registry import build_model
from ctrkit.testing import random_batch, tiny_schema
from ctrkit.train.distributed import average_gradients, sparse_parameters
from ctrkit.train.trainer import build_optimizers, clip_gradients, task_loss

STEPS, HALF = 4, 32


def _halves(step: int) -> tuple[Batch, Batch]:
    full = random_batch(tiny_schema(), 2 * HALF, seed=100 + step)
    def part(a: int, b: int) -> Batch:
        return Batch(ids=full.ids[a:b], dense=full.dense[a:b], sequences={}, labels={t: v[a:b] for t, v in full.labels.items()})
    return part(0, HALF), part(HALF, 2 * HALF)


def _full(step: int) -> Batch:
    return random_batch(tiny_schema(), 2 * HALF, seed=100 + step)


def _train(batches: list[Batch], world: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model("DeepFM", tiny_schema(), {"embedding_dim": 4, "hidden_units": [8]})
    opts = build_optimizers(model, TrainingConfig(embedding_regularizer=1e-3))
    params = [p for p in model.parameters() if p.requires_grad]
    sparse = sparse_parameters(model)
    assert sparse, "the embedding tables should be row-sparse by default"
    for b in batches:
        for o in opts:
            o.zero_grad(set_to_none=True)
        task_loss(model(b), b).backward()
        if world:
            average_gradients(params, sparse)
        clip_gradients(params, 10.0)
        for o in opts:
            o.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rank_main(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        state = _train([_halves(s)[rank] for s in range(STEPS)], world=True)
        torch.save(state, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="torch.distributed (gloo) unavailable")
def test_two_ranks_equal_one_process_with_the_union_batch(tmp_path: Path):
    mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt")
    r1 = torch.load(tmp_path / "rank1.pt")
    reference = _train([_full(s) for s in range(STEPS)], world=False)
    initial = {k: v for k, v in _train([], world=False).items()}
    for k in reference:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=f"{k}: ranks diverged")
        torch.testing.assert_close(r0[k], reference[k], rtol=1e-5, atol=1e-6, msg=f"{k}: differs from one process")
    # Guard against a vacuous pass: training moved the embeddings and the MLP.
    moved = [k for k in reference if not torch.equal(reference[k], initial[k])]
    assert any("embedding" in k for k in moved) and any("mlp" in k for k in moved)


def test_average_gradients_is_a_no_op_without_a_process_group():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    average_gradients([p], set())
    assert torch.equal(p.grad, torch.full((3,), 2.0))


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="torch.distributed (gloo) unavailable")
def test_torchrun_two_ranks_match_one_process_with_double_batch(tmp_path: Path):
    """`torchrun --nproc_per_node 2 ctrkit train` with batch b ends with the metrics of one process
    with batch 2b: same data per step (rank r takes global batches r, r+2, ...), averaged
    gradients, gathered evaluation, the best weights restored on every rank."""
    import shutil
    import subprocess

    import yaml

    from ctrkit.data.synthetic import SynthConfig, synthesize

    data = tmp_path / "data"
    synthesize(data, SynthConfig(rows=20_000, num_numeric=2, num_categorical=5, seed=3), progress=False)  # 16,000 train rows
    ctrkit = shutil.which("ctrkit") or str(Path(sys.executable).with_name("ctrkit"))
    cfg = {
        "dataset": {"name": "generic", "source": str(data), "store": str(tmp_path / "store")},
        "model": {"name": "DeepFM", "params": {"embedding_dim": 4, "hidden_units": [16]}},
        "training": {"batch_size": 1000, "epochs": 2, "threads": 1, "seed": 5, "progress": False},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # The store first, in one process: both ranks then only read it.
    subprocess.run([ctrkit, "data", "prepare", "generic", "--source", str(data), "--store", str(tmp_path / "store")],
                   check=True, env=env, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--no-python"]
    subprocess.run(torchrun + [ctrkit, "train", str(tmp_path / "run.yaml"), "--run-dir", str(tmp_path / "ddp")],
                   check=True, env=env, capture_output=True, timeout=600)
    subprocess.run([ctrkit, "train", str(tmp_path / "run.yaml"), "--set", "training.batch_size=2000",
                    "--run-dir", str(tmp_path / "one")], check=True, env=env, capture_output=True, timeout=600)
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())["test"]["click"]
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())["test"]["click"]
    assert ddp["auc"] == pytest.approx(one["auc"], abs=1e-4)
    assert ddp["logloss"] == pytest.approx(one["logloss"], abs=1e-4)

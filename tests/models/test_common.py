"""The common suite: every registered model, checked for the same promises.

Shapes, gradients reaching every parameter, determinism under a seed, a save/load round trip,
and fitting a tiny learnable set. Model-specific invariants live in ``tests/models/test_<name>.py``.
"""

from __future__ import annotations

import io

import pytest
import torch

from ctrkit.models import build_model, list_models
from ctrkit.testing import learnable_batches, random_batch, tiny_schema

MODELS = [m.name for m in list_models()]


def schema_for(kind: str):
    if kind == "sequence":
        return tiny_schema(sequence=True)
    if kind == "multitask":
        return tiny_schema(tasks=("click", "conversion"))
    if kind == "multidomain":
        return tiny_schema(domains=3)
    return tiny_schema()


def make(name: str, seed: int = 0):
    from ctrkit.models import get_model_info

    info = get_model_info(name)
    schema = schema_for(info.kind)
    torch.manual_seed(seed)
    return build_model(name, schema, info.cls.test_params), schema


def total_loss(model, batch):
    out = model(batch)
    loss = sum(
        torch.nn.functional.binary_cross_entropy_with_logits(out.logits[t], batch.labels[t])
        for t in out.logits
    )
    if out.aux_loss is not None:
        loss = loss + out.aux_loss
    return loss


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes(name):
    model, schema = make(name)
    b = random_batch(schema, 16)
    out = model(b)
    assert set(out.logits) == set(schema.task_names)
    for t, v in out.logits.items():
        assert v.shape == (16,), (t, v.shape)
        assert v.dtype == torch.float32
        assert torch.isfinite(v).all()


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    model, schema = make(name)
    model.train()
    b = random_batch(schema, 32, seed=1)
    total_loss(model, b).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"
    for n, p in model.named_parameters():
        g = p.grad.to_dense() if p.grad.is_sparse else p.grad
        assert torch.isfinite(g).all(), n


@pytest.mark.parametrize("name", MODELS)
def test_deterministic_under_seed(name):
    m1, schema = make(name, seed=3)
    m2, _ = make(name, seed=3)
    b = random_batch(schema, 16, seed=2)
    m1.eval(), m2.eval()
    with torch.no_grad():
        o1, o2 = m1(b), m2(b)
    for t in o1.logits:
        torch.testing.assert_close(o1.logits[t], o2.logits[t], rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name):
    m1, schema = make(name, seed=4)
    m2, _ = make(name, seed=5)
    buf = io.BytesIO()
    torch.save(m1.state_dict(), buf)
    buf.seek(0)
    m2.load_state_dict(torch.load(buf))
    b = random_batch(schema, 16, seed=6)
    m1.eval(), m2.eval()
    with torch.no_grad():
        o1, o2 = m1(b), m2(b)
    for t in o1.logits:
        torch.testing.assert_close(o1.logits[t], o2.logits[t])


@pytest.mark.parametrize("name", MODELS)
def test_fits_a_tiny_learnable_set(name):
    from ctrkit.metrics import auc

    model, schema = make(name, seed=7)
    batches = learnable_batches(schema, n_batches=4, batch_size=128, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        for b in batches:
            opt.zero_grad()
            total_loss(model, b).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        for t in schema.task_names:
            y = torch.cat([b.labels[t] for b in batches]).numpy()
            p = torch.cat([model(b).logits[t] for b in batches]).numpy()
            assert auc(y, p) > 0.9, f"{name}/{t}: train AUC {auc(y, p):.3f}"

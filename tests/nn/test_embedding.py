"""ctrkit.nn.Embedding: the dense-gradient backward equals nn.Embedding's; other modes defer to it."""

from __future__ import annotations

import pytest
import torch

from ctrkit.nn.embedding import Embedding


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dense_gradient_equals_nn_embedding(dtype):
    torch.manual_seed(0)
    ours, ref = Embedding(50, 4).to(dtype), torch.nn.Embedding(50, 4).to(dtype)
    ref.weight.data.copy_(ours.weight.data)
    rows = torch.randint(0, 50, (33, 7))  # repeated rows: the gradient accumulates
    y, y_ref = ours(rows), ref(rows)
    assert y.shape == (33, 7, 4) and torch.equal(y, y_ref)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    assert torch.allclose(ours.weight.grad, ref.weight.grad, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)
    assert not ours.weight.grad.is_sparse


def test_sparse_mode_and_inference_take_nn_embedding_path():
    e = Embedding(20, 3)
    rows = torch.tensor([[1, 2], [2, 19]])
    e.sparse = True
    e(rows).sum().backward()
    assert e.weight.grad.is_sparse
    with torch.no_grad():
        assert e(rows).requires_grad is False
    traced = torch.jit.trace(Embedding(20, 3), rows)  # export traces nn.Embedding's own op
    assert traced(rows).shape == (2, 2, 3)


def test_padding_idx_keeps_its_zero_gradient():
    e = Embedding(10, 2, padding_idx=0)
    rows = torch.tensor([0, 0, 3])
    e(rows).sum().backward()
    assert torch.equal(e.weight.grad[0], torch.zeros(2)) and torch.equal(e.weight.grad[3], torch.ones(2))

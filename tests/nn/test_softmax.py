"""softmax_last: the values and gradients of torch.softmax(x, -1), on short and long axes."""

from __future__ import annotations

import pytest
import torch

from ctrkit.nn.softmax import _ShortSoftmax, softmax_last


@pytest.mark.parametrize("shape", [(37, 4, 10, 10), (5, 1), (3, 15), (6, 16), (2, 3, 40)])
def test_values_and_gradients_match_torch(shape):
    torch.manual_seed(0)
    x = (torch.randn(*shape, dtype=torch.float64) * 5).requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    y, ref = softmax_last(x), torch.softmax(x2, dim=-1)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    y.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, x2.grad)


def test_short_axes_take_the_blocked_form_and_long_ones_torch():
    short = softmax_last(torch.randn(4, 10, requires_grad=True))
    long = softmax_last(torch.randn(4, 16, requires_grad=True))
    assert type(short.grad_fn).__name__ == "_ShortSoftmaxBackward"
    assert type(long.grad_fn).__name__ != "_ShortSoftmaxBackward"
    half = softmax_last(torch.randn(4, 10, dtype=torch.bfloat16, requires_grad=True))
    assert type(half.grad_fn).__name__ != "_ShortSoftmaxBackward"  # PyTorch's float32 accumulation


def test_gradcheck_and_large_logits():
    x = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_ShortSoftmax.apply, (x,))
    big = torch.tensor([[1000.0, 999.0, -1000.0]])  # exp would overflow without the max shift
    torch.testing.assert_close(softmax_last(big), torch.softmax(big, dim=-1))


def test_masked_entries_get_zero_weight():
    # FiGNN masks the diagonal with -inf before the softmax.
    s = torch.randn(2, 5, 5).masked_fill(torch.eye(5, dtype=torch.bool), float("-inf"))
    y = softmax_last(s)
    assert torch.all(y.diagonal(dim1=1, dim2=2) == 0)
    torch.testing.assert_close(y.sum(-1), torch.ones(2, 5))
    torch.testing.assert_close(y, torch.softmax(s, dim=-1))


def test_traced_graph_uses_torch_softmax():
    traced = torch.jit.trace(softmax_last, torch.randn(3, 10))
    assert "softmax" in str(traced.graph)
    x = torch.randn(6, 10)
    torch.testing.assert_close(traced(x), torch.softmax(x, dim=-1))

"""Softmax over a short last axis: the attention weights over fields.

Why: PyTorch's CPU softmax (2.13) takes a slow path when the axis is shorter than its vector
width (16 floats here). Over attention weights shaped (4096, 4, 10, 10) -- AutoInt on Frappe_x1
-- forward and backward took 41 ms on one thread, against 5 ms for an axis of 16. Written as
max, subtract, exp, sum and divide, with the usual closed-form backward, the same values take
16 ms. Axes of 16 or more, other devices, half-precision tensors (bf16 autocast: PyTorch's kernel
accumulates them in float32, the written-out form would round each step) and traced, scripted or
compiled graphs keep ``torch.softmax``.
"""

from __future__ import annotations

import torch

# Below this axis length PyTorch's kernel is the slow one (measured: 15 -> 41 ms, 16 -> 5 ms).
_SHORT = 16


class _ShortSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = (x - x.amax(-1, keepdim=True)).exp_()  # shifted by the row's max: no overflow
        y.div_(y.sum(-1, keepdim=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return y * (g - (g * y).sum(-1, keepdim=True))  # J^T g for J = diag(y) - y y^T


def softmax_last(x: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(x, dim=-1)``: x (..., n) -> (..., n), each row summing to one.

    Rows of ``-inf`` with at least one finite entry are fine (those entries get weight 0); a
    row of only ``-inf`` gives NaN, as ``torch.softmax`` does.
    """
    if (  # graph capture first: a traced shape must not reach a Python comparison
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
        or x.dim() == 0
        or x.shape[-1] >= _SHORT
        or x.device.type != "cpu"
        or x.dtype not in (torch.float32, torch.float64)
    ):
        return torch.softmax(x, dim=-1)
    return _ShortSoftmax.apply(x)

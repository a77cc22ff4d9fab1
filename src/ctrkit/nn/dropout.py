"""Dropout with a cheaper mask than ``torch.nn.Dropout`` on CPU.

PyTorch's CPU dropout draws its mask with ``bernoulli_``, which costs about 9 ns per element here
(15 ms for a 4096 x 400 activation: a third of a DNN training step on Frappe_x1). This version
fills one int64 per four elements with the raw generator (about 1 ns per element) and keeps an
element when its 16-bit slice is above the threshold. Semantics are dropout's: each element is
zeroed with probability p (quantised to 1/65536) and survivors are scaled by 1/(1-p). It uses
torch's default generator, so it is seeded and checkpointed like everything else.
"""

from __future__ import annotations

import torch
from torch import nn

_INT16_MIN = -32768


def dropout_mask(shape: torch.Size, p: float, device: torch.device | None = None) -> torch.Tensor:
    """(shape) bool, True where an element is kept (probability 1 - p)."""
    n = 1
    for s in shape:
        n *= s
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), 2**63 - 1)
    r16 = words.view(torch.int16)[:n].view(shape)
    return r16 >= _INT16_MIN + int(round(p * 65536))


class _MaskedScale(torch.autograd.Function):
    """x * m with m = scale where kept, 0 where dropped; the same m scales the gradient.

    Why a float mask: ``where(keep, x * scale, 0)`` walks the activation twice in forward and the
    gradient twice in backward; building m once (one pass over the bool mask) leaves one multiply
    each way -- about 2.4x less time for a 4096 x 400 activation on this CPU.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        m = torch.where(keep, scale, 0.0).to(x.dtype)
        ctx.save_for_backward(m)
        return x * m

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (m,) = ctx.saved_tensors
        return grad * m, None, None


class FastDropout(nn.Module):
    """Drop-in for ``nn.Dropout(p)``: x (any shape) -> same shape; identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = dropout_mask(x.shape, self.p, x.device)
        return _MaskedScale.apply(x, keep, 1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"

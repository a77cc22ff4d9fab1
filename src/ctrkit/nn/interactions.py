"""Second-order interactions between field embeddings.

Every layer here takes the field embeddings of :class:`ctrkit.nn.FeatureEmbedding`, a tensor
``e`` of shape (B, F, D), and has no parameters of its own: the models that use them learn only
the embeddings (FM, DeepFM) or feed the result to an MLP (IPNN).
"""

from __future__ import annotations

import torch
from torch import nn


def bi_interaction(e: torch.Tensor) -> torch.Tensor:
    """sum_{i<j} v_i * v_j (element-wise), by the square-of-sum trick.

    e: (B, F, D) -> (B, D). Rendle (ICDM 2010, Lemma 3.1) rewrites the pairwise sum as
    ``0.5 * ((sum_i v_i)^2 - sum_i v_i^2)``, which costs O(F*D) instead of O(F^2*D).
    """
    square_of_sum = e.sum(dim=1).pow(2)
    sum_of_squares = e.pow(2).sum(dim=1)
    return 0.5 * (square_of_sum - sum_of_squares)


class FMInteraction(nn.Module):
    """The FM pairwise term sum_{i<j} <v_i, v_j> over fields (Rendle 2010, Eq. 1).

    e: (B, F, D) -> (B,). One field per input column, so the one-hot x_i of the paper is 1 for
    exactly one value per field and the term reduces to pairs of field embeddings. Numeric fields
    arrive already scaled (x * v), which is the paper's x_i x_j <v_i, v_j> for real-valued x.
    """

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and e.requires_grad:
            return _FMScalar.apply(e)
        # Inference (and export: TorchScript and ONNX cannot take a Python autograd Function or
        # linalg.vecdot): plain ops, the same values.
        s = e.sum(dim=1)
        return 0.5 * ((s * s).sum(dim=-1) - (e * e).sum(dim=(1, 2)))


class _FMScalar(torch.autograd.Function):
    """e: (B, F, D) -> (B,) = 0.5 * (||sum_f e_f||^2 - sum_f ||e_f||^2), with a hand-written
    backward d/de_f = g * (sum_j e_j - e_f).

    Why: autograd through ``bi_interaction(e).sum(-1)`` keeps and walks several (B, F, D)
    temporaries (two pows, their backward muls, the expand of the sum); on CPU these memory-bound
    passes cost as much as a 400-wide MLP layer for Criteo-sized batches. Here the forward makes no
    (B, F, D) temporary (dot products) and the backward is one subtract and one in-place multiply.
    """

    @staticmethod
    def forward(ctx, e: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = e.sum(dim=1)  # (B, D)
        flat = e.reshape(e.shape[0], -1)
        ctx.save_for_backward(e, s)
        return 0.5 * (torch.linalg.vecdot(s, s) - torch.linalg.vecdot(flat, flat))

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        e, s = ctx.saved_tensors
        return (s.unsqueeze(1) - e).mul_(g.view(-1, 1, 1))


class InnerProductPairs(nn.Module):
    """The inner product of every field pair, as IPNN's product layer sees them.

    e: (B, F, D) -> (B, F*(F-1)/2), pairs (i, j) with i < j in row-major order
    ((0,1), (0,2), ..., (1,2), ...), the order of ``torch.triu_indices`` and of FuxiCTR's
    ``InnerProductInteraction(output="inner_product")``.
    """

    def __init__(self, num_fields: int):
        super().__init__()
        self.num_fields = num_fields
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        # Index buffers, not parameters: they follow .to(device) but are rebuilt from num_fields,
        # so they stay out of the state dict.
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    @property
    def num_pairs(self) -> int:
        return int(self.rows.numel())

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(e, e.transpose(1, 2))  # (B, F, F); F is small (tens), so this is cheap
        return gram[:, self.rows, self.cols]

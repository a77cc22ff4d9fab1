"""FiBiNET's two layers: SENET field re-weighting and the bilinear interaction of field pairs.

Reference: Huang et al., "FiBiNET: Combining Feature Importance and Bilinear feature Interaction
for Click-Through Rate Prediction", RecSys 2019 (the SENET Layer and Bilinear-Interaction Layer
sections); shapes as FuxiCTR's ``SqueezeExcitation``
(``fuxictr/pytorch/layers/attentions/squeeze_excitation.py``) and ``BilinearInteractionV2``
(``fuxictr/pytorch/layers/interactions/bilinear_interaction.py``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

BilinearType = Literal["field_all", "field_each", "field_interaction"]


class SqueezeExcitation(nn.Module):
    """SENET over fields: squeeze each field embedding to its mean, excite through a bottleneck
    of ``max(1, F // reduction_ratio)`` units, and scale each field by its weight.

    e: (B, F, D) -> (B, F, D), ``e * a[..., None]`` with a = :meth:`field_weights` (B, F).

    The paper puts ReLU on both excitation layers; FuxiCTR lets the last one be ReLU (weights
    >= 0, the default) or sigmoid (weights in (0, 1)).
    """

    def __init__(self, num_fields: int, reduction_ratio: float = 3, excitation_activation: str = "relu"):
        super().__init__()
        reduced = max(1, int(num_fields / reduction_ratio))
        last: nn.Module
        if excitation_activation.lower() == "relu":
            last = nn.ReLU()
        elif excitation_activation.lower() == "sigmoid":
            last = nn.Sigmoid()
        else:
            raise ValueError(f"excitation_activation must be 'relu' or 'sigmoid', not '{excitation_activation}'")
        self.excitation = nn.Sequential(
            nn.Linear(num_fields, reduced, bias=False),
            nn.ReLU(),
            nn.Linear(reduced, num_fields, bias=False),
            last,
        )

    def field_weights(self, e: torch.Tensor) -> torch.Tensor:
        """e: (B, F, D) -> (B, F) non-negative field weights."""
        return self.excitation(e.mean(dim=-1))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return e * self.field_weights(e).unsqueeze(-1)


class BilinearInteraction(nn.Module):
    """p_ij = (v_i W) * v_j for every field pair i < j.

    e: (B, F, D) -> (B, F*(F-1)/2, D), pairs in ``torch.triu_indices`` order
    ((0,1), (0,2), ..., (1,2), ...).

    ``bilinear_type`` picks how W is shared: ``field_all`` one D x D matrix for all pairs,
    ``field_each`` one per left field i, ``field_interaction`` one per pair (i, j).
    """

    def __init__(self, num_fields: int, dim: int, bilinear_type: BilinearType = "field_interaction"):
        super().__init__()
        self.bilinear_type = bilinear_type
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        # Index buffers rebuilt from num_fields, so kept out of the state dict.
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        num_pairs = int(rows.numel())
        if bilinear_type == "field_all":
            shape: tuple[int, ...] = (dim, dim)
        elif bilinear_type == "field_each":
            shape = (num_fields, dim, dim)
        elif bilinear_type == "field_interaction":
            shape = (num_pairs, dim, dim)
        else:
            raise ValueError(f"unknown bilinear_type '{bilinear_type}'")
        self.weight = nn.Parameter(torch.empty(shape))
        # Xavier-normal per D x D matrix (std = sqrt(2 / (D + D))). FuxiCTR calls xavier_normal_ on
        # the stacked 3-d tensor, whose fan counts differ slightly; the per-matrix scale is the
        # one the paper's W implies.
        nn.init.normal_(self.weight, std=dim**-0.5)

    @property
    def num_pairs(self) -> int:
        return int(self.rows.numel())

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        right = e[:, self.cols]  # (B, P, D)
        if self.bilinear_type == "field_all":
            left = (e @ self.weight)[:, self.rows]
        elif self.bilinear_type == "field_each":
            left = torch.einsum("bfd,fde->bfe", e, self.weight)[:, self.rows]
        else:
            left = torch.einsum("bpd,pde->bpe", e[:, self.rows], self.weight)
        return left * right

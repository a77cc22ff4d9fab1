"""The Generalized Interaction Network of AOANet.

Reference: Lang et al., "Architecture and Operation Adaptive Network for Online Recommendations",
KDD 2021, Section 3.2 (generalized interaction layer). Layout, parameter shapes and initialisation
(W identity, alpha and h ones) as FuxiCTR's ``GeneralizedInteraction`` in
``model_zoo/AOANet/src/AOANet.py``.
"""

from __future__ import annotations

import torch
from torch import nn


class GeneralizedInteraction(nn.Module):
    """One generalized interaction layer.

    With base fields B_0 (B, F, D) and the previous layer's subspaces B_i (B, S_in, D), output
    subspace o (of S_out) is

        B_{i+1}[o] = sum_{s, f} alpha[s*F + f, o] * ((W_o ⊙ (b0_f ⊗ bi_s)) h_o)

    where b0_f ⊗ bi_s is the D x D outer product, W_o (D x D) an elementwise weight and h_o (D,)
    a projection. The D x D products are never built: (W_o ⊙ (u ⊗ v)) h_o = u ⊙ (M_o v) with
    M_o = W_o ⊙ h_o^T, so the layer costs O(B S_in S_out D^2 + B F S_in S_out D).

    B_0: (B, F, D), B_i: (B, S_in, D) -> (B, S_out, D).
    """

    def __init__(self, input_subspaces: int, output_subspaces: int, num_fields: int, dim: int):
        super().__init__()
        self.input_subspaces, self.num_fields = input_subspaces, num_fields
        self.W = nn.Parameter(torch.eye(dim).unsqueeze(0).repeat(output_subspaces, 1, 1))  # (S_out, D, D)
        # Row s*F + f mixes the pair (input subspace s, field f), FuxiCTR's order.
        self.alpha = nn.Parameter(torch.ones(input_subspaces * num_fields, output_subspaces))
        self.h = nn.Parameter(torch.ones(output_subspaces, dim, 1))

    def forward(self, b0: torch.Tensor, bi: torch.Tensor) -> torch.Tensor:
        M = self.W * self.h.transpose(1, 2)  # (S_out, D, D): M[o, p, q] = W[o, p, q] h[o, q]
        proj = torch.einsum("opq,bsq->bsop", M, bi)  # (B, S_in, S_out, D)
        alpha = self.alpha.view(self.input_subspaces, self.num_fields, -1)  # (S_in, F, S_out)
        return torch.einsum("bfp,sfo,bsop->bop", b0, alpha, proj)


class GeneralizedInteractionNet(nn.Module):
    """``num_layers`` :class:`GeneralizedInteraction` layers; the first reads the F fields as its
    input subspaces. e: (B, F, D) -> (B, num_subspaces, D)."""

    def __init__(self, num_layers: int, num_subspaces: int, num_fields: int, dim: int):
        super().__init__()
        if num_layers < 1 or num_subspaces < 1:
            raise ValueError(f"num_interaction_layers and num_subspaces must be >= 1, got {num_layers}, {num_subspaces}")
        self.layers = nn.ModuleList(
            GeneralizedInteraction(num_fields if i == 0 else num_subspaces, num_subspaces, num_fields, dim)
            for i in range(num_layers)
        )

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        b = e
        for layer in self.layers:
            b = layer(e, b)
        return b

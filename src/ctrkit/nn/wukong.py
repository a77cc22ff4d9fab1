"""WuKong's interaction layer: a factorization machine block and a linear compression block.

Reference: Zhang et al., "Wukong: Towards a Scaling Law for Large-Scale Recommendation", ICML 2024
(Section 3: the optimized FM X (X^T Y), FMB = MLP(LN(flatten(FM))), LCB = a linear map, stacked
layers with residual + LayerNorm). Shapes as FuxiCTR's ``FactorizationMachineBlock``, ``FMB``,
``LinearCompressionBlock`` and ``WuKongLayer`` in ``model_zoo/WuKong/src/WuKong.py``, which works
on the flattened embeddings: FMB and LCB each emit a vector (``fmb_dim``, ``compressed_dim``), and
a linear ``transform`` maps their concatenation back to F*D before the residual.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ctrkit.nn.dropout import FastDropout
from ctrkit.nn.mlp import MLP


class FactorizationMachineBlock(nn.Module):
    """x: (B, F, D) -> (B, F*k): flatten(X (X^T Y)) = flatten((X X^T) Y), Y: (F, k).

    (X X^T) holds every pairwise field inner product; Y compresses it to k columns. Computing
    X^T Y first costs O(F D k) instead of O(F^2 D). Y starts N(0, 1) as in FuxiCTR.
    """

    def __init__(self, num_fields: int, project_dim: int):
        super().__init__()
        self.projection = nn.Parameter(torch.randn(num_fields, project_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = x.transpose(1, 2) @ self.projection  # (B, D, k)
        return (x @ projected).flatten(1)  # (B, F, k) -> (B, F*k)


class WuKongLayer(nn.Module):
    """x: (B, F, D) -> (B, F, D).

        fmb = ReLU(MLP(LN(FM(x))))                        (B, fmb_dim), MLP hidden ``fmb_units``
        lcb = dropout(W_c flatten(x) + b_c)               (B, compressed_dim)
        out = LN(W_t [fmb, lcb] + b_t + flatten(x))       (B, F*D), reshaped to (B, F, D)
    """

    def __init__(
        self,
        num_fields: int,
        embedding_dim: int,
        *,
        project_dim: int = 8,
        fmb_units: Sequence[int] = (32, 32),
        fmb_dim: int = 40,
        compressed_dim: int = 40,
        dropout: float = 0.2,
    ):
        super().__init__()
        F, D = num_fields, embedding_dim
        self.fm = FactorizationMachineBlock(F, project_dim)
        self.fm_norm = nn.LayerNorm(F * project_dim)
        self.fmb_mlp = MLP(F * project_dim, fmb_units, output_dim=fmb_dim)
        self.lcb = nn.Linear(F * D, compressed_dim)
        self.lcb_dropout = FastDropout(dropout) if dropout > 0 else None
        self.transform = nn.Linear(fmb_dim + compressed_dim, F * D)
        self.norm = nn.LayerNorm(F * D)
        for lin in (self.lcb, self.transform):
            # FuxiCTR's BaseModel re-initialises every Linear Xavier-normal with zero bias.
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)

    def fmb(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fmb_mlp(self.fm_norm(self.fm(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, F, D = x.shape
        flat = x.reshape(B, F * D)
        lcb = self.lcb(flat)
        if self.lcb_dropout is not None:
            lcb = self.lcb_dropout(lcb)
        out = self.transform(torch.cat([self.fmb(x), lcb], dim=1))
        return self.norm(out + flat).view(B, F, D)

"""GDCN's gated cross network: DCN-V2's full-rank cross layer times a learned sigmoid gate.

Reference: Wang et al., "Towards Deeper, Lighter and Interpretable Cross Network for CTR
Prediction" (GDCN, CIKM 2023), Eq. 1 (the gated cross layer). Details as FuxiCTR's
``GateCorssLayer`` in ``model_zoo/GDCN/src/GDCN.py``.
"""

from __future__ import annotations

import torch
from torch import nn


class GatedCrossNet(nn.Module):
    """x_0: (B, d) -> (B, d).

    Per layer l:  x_{l+1} = x_0 * (W_l x_l + b_l) * sigmoid(W_g,l x_l) + x_l

    With the information gate fixed at 1 this is exactly DCN-V2's cross layer
    (:class:`ctrkit.nn.cross.CrossNetV2`). ``gate_activation`` is a module attribute so a test can
    swap it. Init as FuxiCTR: W_l and W_g,l Xavier-normal (its BaseModel re-initialises every
    Linear), b_l uniform on [0, 1) (set in ``GateCorssLayer`` itself).
    """

    def __init__(self, input_dim: int, num_layers: int = 3):
        super().__init__()
        if input_dim < 1 or num_layers < 1:
            raise ValueError(f"need input_dim >= 1 and num_layers >= 1, got {input_dim}, {num_layers}")
        self.num_layers = num_layers
        self.w = nn.ModuleList(nn.Linear(input_dim, input_dim, bias=False) for _ in range(num_layers))
        self.wg = nn.ModuleList(nn.Linear(input_dim, input_dim, bias=False) for _ in range(num_layers))
        self.b = nn.Parameter(torch.rand(num_layers, input_dim))
        for lin in [*self.w, *self.wg]:
            nn.init.xavier_normal_(lin.weight)
        self.gate_activation: nn.Module = nn.Sigmoid()

    def gates(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """The information gate of ``layer`` for input x_l: (B, d) in (0, 1)."""
        return self.gate_activation(self.wg[layer](x))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for l in range(self.num_layers):
            x = x0 * (self.w[l](x) + self.b[l]) * self.gates(x, l) + x
        return x

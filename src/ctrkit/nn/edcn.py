"""Bridge and regulation modules of EDCN (Enhanced Deep & Cross Network).

Reference: Chen et al., "Enhancing Explicit and Implicit Feature Interactions via Information
Sharing for Parallel Deep CTR Models", CIKM 2021 (DLP-KDD 2021), Section 3: the bridge module
fuses the cross and deep layers' outputs after every layer, the regulation module re-weights the
fields (a per-tower softmax gate over fields with temperature tau) before each layer. Layout as
FuxiCTR's ``BridgeModule`` and ``RegulationModule`` in ``model_zoo/EDCN/src/EDCN.py``.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from ctrkit.nn.cross import CrossNet

BridgeType = Literal["hadamard_product", "pointwise_addition", "concatenation", "attention_pooling"]


def cross_layer(net: CrossNet, layer: int, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Layer ``layer`` of a DCN :class:`~ctrkit.nn.cross.CrossNet` on an arbitrary x_l:
    x_0 * (x_l . w_l) + b_l + x_l. EDCN feeds each cross layer the regulated bridge output rather
    than the previous cross layer's output, so it needs the layers one at a time.
    """
    return x0 * (x @ net.weight[layer]).unsqueeze(-1) + net.bias[layer] + x


class BridgeModule(nn.Module):
    """Fuses the cross output x and deep output h, both (B, d), into (B, d):

    hadamard_product: x * h; pointwise_addition: x + h; concatenation: ReLU(W [x; h] + b);
    attention_pooling: softmax(MLP_1(x)) * x + softmax(MLP_2(h)) * h.

    Departure: FuxiCTR's attention_pooling applies its first attention MLP to both inputs (the
    second is built but unused); here each input has its own, as in the paper (Eq. 7).
    """

    def __init__(self, dim: int, bridge_type: BridgeType = "hadamard_product"):
        super().__init__()
        if bridge_type not in get_args(BridgeType):
            raise ValueError(f"bridge_type must be one of {get_args(BridgeType)}, got {bridge_type!r}")
        self.bridge_type = bridge_type
        if bridge_type == "concatenation":
            self.concat = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU())
        elif bridge_type == "attention_pooling":
            self.attention1 = self._attention(dim)
            self.attention2 = self._attention(dim)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @staticmethod
    def _attention(dim: int) -> nn.Module:
        return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim, bias=False), nn.Softmax(dim=-1))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if self.bridge_type == "hadamard_product":
            return x * h
        if self.bridge_type == "pointwise_addition":
            return x + h
        if self.bridge_type == "concatenation":
            return self.concat(torch.cat([x, h], dim=-1))
        return self.attention1(x) * x + self.attention2(h) * h


class RegulationModule(nn.Module):
    """Field-wise gates for the two towers: g_t = softmax(theta_t / tau) over the F fields, each
    field's weight repeated over its D coordinates; optional BatchNorm1d per tower output.

    x: (B, F*D) -> (x * g_cross, x * g_deep). theta starts at ones (uniform gates 1/F).
    """

    def __init__(self, num_fields: int, dim: int, *, temperature: float = 1.0, batch_norm: bool = False):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.tau = temperature
        self.dim = dim
        self.g1 = nn.Parameter(torch.ones(num_fields))
        self.g2 = nn.Parameter(torch.ones(num_fields))
        self.bn1 = nn.BatchNorm1d(num_fields * dim) if batch_norm else None
        self.bn2 = nn.BatchNorm1d(num_fields * dim) if batch_norm else None

    def gates(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Two (F*D,) gate vectors, constant within each field's D coordinates."""
        g1 = torch.softmax(self.g1 / self.tau, dim=-1).repeat_interleave(self.dim)
        g2 = torch.softmax(self.g2 / self.tau, dim=-1).repeat_interleave(self.dim)
        return g1, g2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g1, g2 = self.gates()
        out1, out2 = x * g1, x * g2
        if self.bn1 is not None and self.bn2 is not None:
            out1, out2 = self.bn1(out1), self.bn2(out2)
        return out1, out2

"""Cross networks of DCN and DCN-V2: explicit, bounded-degree feature crosses on a flat input.

Each layer takes the flattened field embeddings x_0 of shape (B, d) (d = F * D) and keeps a
residual, so layer l holds all crosses of x_0 up to degree l + 1.

* :class:`CrossNet` (Wang et al., ADKDD 2017, Section 2.2): rank-one weight per layer,
  x_{l+1} = x_0 * (x_l . w_l) + b_l + x_l.
* :class:`CrossNetV2` (Wang et al., WWW 2021, DCN-V2 cross layer): full matrix per layer,
  x_{l+1} = x_0 * (W_l x_l + b_l) + x_l.
* :class:`CrossNetMix` (same paper, the mixture of low-rank experts): W_l is replaced by K experts
  U_i g(C_i g(V_i^T x_l)) with rank r, mixed by a softmax gate on x_l.

Initialisation follows FuxiCTR (``fuxictr/pytorch/layers/interactions/cross_net.py`` plus its
``BaseModel.reset_parameters``): Xavier-normal weights and zero biases, which the BARS configs
were tuned with.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _check(input_dim: int, num_layers: int) -> None:
    if input_dim < 1:
        raise ValueError(f"cross network input_dim must be >= 1, got {input_dim}")
    if num_layers < 1:
        raise ValueError(f"a cross network needs num_layers >= 1, got {num_layers}")


class CrossNet(nn.Module):
    """DCN's cross network. x_0: (B, d) -> (B, d).

    Parameters: ``weight`` (L, d), the vector w_l of each layer; ``bias`` (L, d).
    """

    def __init__(self, input_dim: int, num_layers: int):
        super().__init__()
        _check(input_dim, num_layers)
        self.num_layers = num_layers
        self.weight = nn.Parameter(torch.empty(num_layers, input_dim))
        self.bias = nn.Parameter(torch.zeros(num_layers, input_dim))
        # FuxiCTR holds w_l as nn.Linear(d, 1) and Xavier-normal initialises it: std sqrt(2/(d+1)).
        nn.init.normal_(self.weight, std=math.sqrt(2.0 / (input_dim + 1)))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for l in range(self.num_layers):
            # (x_l . w_l) is one scalar per row: the rank-one x_0 x_l^T w_l of the paper without
            # ever forming the d x d outer product.
            x = x0 * (x @ self.weight[l]).unsqueeze(-1) + self.bias[l] + x
        return x


class CrossNetV2(nn.Module):
    """DCN-V2's full-rank cross network. x_0: (B, d) -> (B, d)."""

    def __init__(self, input_dim: int, num_layers: int):
        super().__init__()
        _check(input_dim, num_layers)
        self.layers = nn.ModuleList(nn.Linear(input_dim, input_dim) for _ in range(num_layers))
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class CrossNetMix(nn.Module):
    """DCN-V2's cross network with a mixture of low-rank experts. x_0: (B, d) -> (B, d).

    Per layer l and expert i: E_i(x_l) = x_0 * (U_i g(C_i g(V_i^T x_l)) + b_l) with g = tanh,
    U_i, V_i: (d, r), C_i: (r, r); then x_{l+1} = sum_i softmax(G x_l)_i E_i(x_l) + x_l.

    As in FuxiCTR's ``CrossNetMix``: the bias b_l is shared by the experts of a layer and the gate
    G (one d-vector per expert) is shared by all layers. Departure: Xavier-normal init per (d, r)
    or (r, r) expert matrix, where FuxiCTR initialises the stacked (K, d, r) tensor at once (its
    fan-in then counts d * r); this only rescales the initial weights.
    """

    def __init__(self, input_dim: int, num_layers: int, *, low_rank: int = 32, num_experts: int = 4):
        super().__init__()
        _check(input_dim, num_layers)
        if low_rank < 1 or num_experts < 1:
            raise ValueError(f"low_rank and num_experts must be >= 1, got {low_rank}, {num_experts}")
        L, K, d, r = num_layers, num_experts, input_dim, low_rank
        self.num_layers = L
        self.U = nn.Parameter(torch.empty(L, K, d, r))
        self.V = nn.Parameter(torch.empty(L, K, d, r))
        self.C = nn.Parameter(torch.empty(L, K, r, r))
        self.bias = nn.Parameter(torch.zeros(L, d))
        self.gate = nn.Linear(d, K, bias=False)
        with torch.no_grad():
            for p in (self.U, self.V, self.C):
                for m in p.view(-1, *p.shape[2:]):
                    nn.init.xavier_normal_(m)
        # FuxiCTR has one nn.Linear(d, 1) per expert: Xavier std sqrt(2/(d+1)) for each row.
        nn.init.normal_(self.gate.weight, std=math.sqrt(2.0 / (d + 1)))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for l in range(self.num_layers):
            v = torch.tanh(torch.einsum("bd,kdr->bkr", x, self.V[l]))  # (B, K, r): project down
            v = torch.tanh(torch.einsum("kst,bkt->bks", self.C[l], v))  # (B, K, r): mix in rank space
            uv = torch.einsum("kdr,bkr->bkd", self.U[l], v)  # (B, K, d): project back up
            experts = x0.unsqueeze(1) * (uv + self.bias[l])  # (B, K, d)
            gates = torch.softmax(self.gate(x), dim=-1)  # (B, K)
            x = torch.einsum("bkd,bk->bd", experts, gates) + x
        return x

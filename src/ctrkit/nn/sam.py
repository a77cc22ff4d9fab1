"""SAM's interaction layers: field-pair products weighted by a dot-product "attention" score.

Reference: Cheng and Xue, "An Analysis of the Self-Attentive Model for CTR Prediction"
(SAM, SIGIR 2021, arXiv:2105.05563). Shapes and defaults as FuxiCTR's ``SAMBlock`` and
``SAM2A/SAM2E/SAM3A/SAM3E`` in ``model_zoo/SAM/src/SAM.py``.

All layers take field embeddings e of shape (B, F, D). With s_ij = <e_i, e_j> (SAM2*) or
s_ij = <e_i, K e_j> (SAM3*):

* SAM2A: out_ij = s_ij * W_ij                        (B, F, F, D), W: (F, F, D) starts at ones
* SAM2E: out_ij = s_ij * (e_i * e_j)                 (B, F, F, D), no parameters
* SAM3A: out_i  = sum_j s_ij * W_ij [+ Q e_i]        (B, F, D)
* SAM3E: out_i  = sum_j s_ij * (e_i * e_j) [+ Q e_i] (B, F, D)

The "2" variants are a single layer whose output is flattened (``concat`` aggregation only); the
"3" variants stack ``num_layers`` layers and allow concat/sum/mean/weighted pooling over fields.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ctrkit.nn.dropout import FastDropout

InteractionType = Literal["SAM2A", "SAM2E", "SAM3A", "SAM3E"]
Aggregation = Literal["concat", "weighted_pooling", "mean_pooling", "sum_pooling"]


def _dropout(p: float) -> nn.Module | None:
    return FastDropout(p) if p > 0 else None


class SAM2A(nn.Module):
    """e: (B, F, D) -> (B, F, F, D): <e_i, e_j> W_ij."""

    def __init__(self, num_fields: int, embedding_dim: int, dropout: float = 0.0):
        super().__init__()
        self.W = nn.Parameter(torch.ones(num_fields, num_fields, embedding_dim))
        self.dropout = _dropout(dropout)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        s = torch.bmm(e, e.transpose(1, 2))  # (B, F, F)
        out = s.unsqueeze(-1) * self.W
        return self.dropout(out) if self.dropout is not None else out


class SAM2E(nn.Module):
    """e: (B, F, D) -> (B, F, F, D): <e_i, e_j> (e_i * e_j)."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.dropout = _dropout(dropout)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        s = torch.bmm(e, e.transpose(1, 2))  # (B, F, F)
        u = e.unsqueeze(2) * e.unsqueeze(1)  # (B, F, F, D)
        out = s.unsqueeze(-1) * u
        return self.dropout(out) if self.dropout is not None else out


class SAM3A(nn.Module):
    """e: (B, F, D) -> (B, F, D): sum_j <e_i, K e_j> W_ij [+ Q e_i]."""

    def __init__(self, num_fields: int, embedding_dim: int, use_residual: bool = True, dropout: float = 0.0):
        super().__init__()
        self.W = nn.Parameter(torch.ones(num_fields, num_fields, embedding_dim))
        self.K = nn.Linear(embedding_dim, embedding_dim, bias=False)
        self.Q = nn.Linear(embedding_dim, embedding_dim, bias=False) if use_residual else None
        self.dropout = _dropout(dropout)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        s = torch.bmm(e, self.K(e).transpose(1, 2))  # (B, F, F)
        out = torch.einsum("bij,ijd->bid", s, self.W)  # sum_j s_ij W_ij without the 4-d tensor
        if self.Q is not None:
            out = out + self.Q(e)
        return self.dropout(out) if self.dropout is not None else out


class SAM3E(nn.Module):
    """e: (B, F, D) -> (B, F, D): sum_j <e_i, K e_j> (e_i * e_j) [+ Q e_i]."""

    def __init__(self, embedding_dim: int, use_residual: bool = True, dropout: float = 0.0):
        super().__init__()
        self.K = nn.Linear(embedding_dim, embedding_dim, bias=False)
        self.Q = nn.Linear(embedding_dim, embedding_dim, bias=False) if use_residual else None
        self.dropout = _dropout(dropout)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        s = torch.bmm(e, self.K(e).transpose(1, 2))  # (B, F, F)
        # sum_j s_ij (e_i * e_j) = e_i * (sum_j s_ij e_j): O(F^2 D) without the (B, F, F, D) tensor.
        out = e * torch.bmm(s, e)
        if self.Q is not None:
            out = out + self.Q(e)
        return self.dropout(out) if self.dropout is not None else out


class SAMBlock(nn.Module):
    """The interaction layers plus the aggregation. e: (B, F, D) -> (B, output_dim).

    output_dim: F*F*D for SAM2* (concat), F*D for SAM3* with concat, D with pooling.
    """

    def __init__(
        self,
        num_layers: int,
        num_fields: int,
        embedding_dim: int,
        *,
        use_residual: bool = False,
        interaction_type: InteractionType = "SAM2E",
        aggregation: Aggregation = "concat",
        dropout: float = 0.0,
    ):
        super().__init__()
        if aggregation not in ("concat", "weighted_pooling", "mean_pooling", "sum_pooling"):
            raise ValueError(f"unknown aggregation '{aggregation}'")
        F, D = num_fields, embedding_dim
        if interaction_type in ("SAM2A", "SAM2E"):
            if aggregation != "concat":
                raise ValueError(f"{interaction_type} supports aggregation='concat' only")
            layer = SAM2A(F, D, dropout) if interaction_type == "SAM2A" else SAM2E(dropout)
            self.layers = nn.ModuleList([layer])
            self.output_dim = F * F * D
        elif interaction_type in ("SAM3A", "SAM3E"):
            if num_layers < 1:
                raise ValueError(f"{interaction_type} needs num_layers >= 1, got {num_layers}")
            self.layers = nn.ModuleList(
                SAM3A(F, D, use_residual, dropout) if interaction_type == "SAM3A" else SAM3E(D, use_residual, dropout)
                for _ in range(num_layers)
            )
            self.output_dim = F * D if aggregation == "concat" else D
        else:
            raise ValueError(f"unknown interaction_type '{interaction_type}'")
        self.aggregation = aggregation
        self.weight = nn.Parameter(torch.ones(F, 1)) if aggregation == "weighted_pooling" else None

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            e = layer(e)
        if self.aggregation == "concat":
            return e.flatten(1)
        if self.weight is not None:
            return (e * self.weight).sum(1)
        if self.aggregation == "mean_pooling":
            return e.mean(1)
        return e.sum(1)

"""MaskBlocks of MaskNet: instance-guided masks that re-weight a hidden vector elementwise.

Reference: Wang et al., "MaskNet: Introducing Feature-Wise Multiplication to CTR Ranking Models by
Instance-Guided Mask", DLP-KDD 2021 (Section 3: instance-guided mask, MaskBlock, serial and
parallel MaskNet). Layout as FuxiCTR's ``MaskBlock``, ``SerialMaskNet`` and ``ParallelMaskNet``
in ``model_zoo/MaskNet/src/MaskNet.py``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ctrkit.nn.dropout import FastDropout
from ctrkit.nn.mlp import MLP, activation


def _xavier(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class FieldLayerNorm(nn.Module):
    """A LayerNorm over the D coordinates of each field, with its own gain and bias per field
    (FuxiCTR keeps one ``nn.LayerNorm(D)`` per field; this is the same computation batched).

    e: (B, F, D) -> (B, F, D).
    """

    def __init__(self, num_fields: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_fields, dim))
        self.bias = nn.Parameter(torch.zeros(num_fields, dim))
        self.eps = eps
        self.dim = dim

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        # (self.dim,), a Python int, not e.shape[-1:]: the ONNX exporter needs a constant shape.
        return F.layer_norm(e, (self.dim,), eps=self.eps) * self.weight + self.bias


class MaskBlock(nn.Module):
    """mask = W2 ReLU(W1 V_emb + b1) + b2 (the instance-guided mask, paper Eq. 1-2), then

        out = Dropout(act(LN(W_h (mask * V_hidden))))       (paper Eq. 6, LN optional)

    V_emb: (B, input_dim), V_hidden: (B, hidden_dim) -> (B, output_dim). The aggregation layer
    is ``reduction_ratio * hidden_dim`` wide (FuxiCTR sizes it from the masked vector).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        *,
        activation_name: str = "relu",
        reduction_ratio: float = 1.0,
        dropout: float = 0.0,
        layer_norm: bool = True,
    ):
        super().__init__()
        agg = int(hidden_dim * reduction_ratio)
        if agg < 1:
            raise ValueError(f"reduction_ratio={reduction_ratio} leaves no aggregation units for width {hidden_dim}")
        self.mask_layer = nn.Sequential(nn.Linear(input_dim, agg), nn.ReLU(), nn.Linear(agg, hidden_dim))
        layers: list[nn.Module] = [nn.Linear(hidden_dim, output_dim, bias=False)]
        if layer_norm:
            layers.append(nn.LayerNorm(output_dim))
        layers.append(activation(activation_name))
        if dropout > 0:
            layers.append(FastDropout(dropout))
        self.hidden_layer = nn.Sequential(*layers)
        _xavier(self)

    def mask(self, v_emb: torch.Tensor) -> torch.Tensor:
        """V_emb: (B, input_dim) -> (B, hidden_dim)."""
        return self.mask_layer(v_emb)

    def forward(self, v_emb: torch.Tensor, v_hidden: torch.Tensor) -> torch.Tensor:
        return self.hidden_layer(self.mask(v_emb) * v_hidden)


class SerialMaskNet(nn.Module):
    """MaskBlocks stacked: block k masks block k-1's output (the first masks the normalised
    embeddings). V_emb, V_hidden: (B, d) -> (B, hidden_units[-1]), or (B, d) with no blocks."""

    def __init__(
        self,
        input_dim: int,
        hidden_units: Sequence[int],
        *,
        activation_name: str = "relu",
        reduction_ratio: float = 1.0,
        dropout: float = 0.0,
        layer_norm: bool = True,
    ):
        super().__init__()
        dims = [input_dim, *hidden_units]
        self.blocks = nn.ModuleList(
            MaskBlock(
                input_dim,
                dims[i],
                dims[i + 1],
                activation_name=activation_name,
                reduction_ratio=reduction_ratio,
                dropout=dropout,
                layer_norm=layer_norm,
            )
            for i in range(len(hidden_units))
        )
        self.output_dim = dims[-1]

    def forward(self, v_emb: torch.Tensor, v_hidden: torch.Tensor) -> torch.Tensor:
        out = v_hidden
        for block in self.blocks:
            out = block(v_emb, out)
        return out


class ParallelMaskNet(nn.Module):
    """``num_blocks`` MaskBlocks side by side on the same input, concatenated, then an MLP.

    V_emb, V_hidden: (B, d) -> (B, output_dim) when ``output_dim`` is set, else (B, hidden_units[-1]).
    """

    def __init__(
        self,
        input_dim: int,
        *,
        num_blocks: int = 1,
        block_dim: int = 64,
        hidden_units: Sequence[int] = (),
        activation_name: str = "relu",
        reduction_ratio: float = 1.0,
        dropout: float = 0.0,
        layer_norm: bool = True,
        output_dim: int | None = None,
    ):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"parallel_num_blocks must be >= 1, got {num_blocks}")
        self.blocks = nn.ModuleList(
            MaskBlock(
                input_dim,
                input_dim,
                block_dim,
                activation_name=activation_name,
                reduction_ratio=reduction_ratio,
                dropout=dropout,
                layer_norm=layer_norm,
            )
            for _ in range(num_blocks)
        )
        # FuxiCTR's MLP here has dropout but no batch norm.
        self.mlp = MLP(
            block_dim * num_blocks, hidden_units, activation_name=activation_name, dropout=dropout, output_dim=output_dim
        )
        self.output_dim = self.mlp.output_dim

    def forward(self, v_emb: torch.Tensor, v_hidden: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([block(v_emb, v_hidden) for block in self.blocks], dim=-1))

"""BST: Behavior Sequence Transformer.

Reference: Chen et al., "Behavior Sequence Transformer for E-commerce Recommendation in Alibaba",
DLP-KDD 2019; cross-checked with FuxiCTR ``model_zoo/BST``.

Structure, with D the behaviour width (E x number of paired sequence fields)::

    tokens  [e_target, e_1, ..., e_L]  + position embeddings          (B, 1 + L, D)
    mask    [True, real_1, ..., real_L]
    Z = TransformerLayer^num_layers(tokens, mask)  (post-norm, LeakyReLU FFN, paper eqs. 4-6)
    pooled: "concat" (paper): Z placed in slots by recency, (B, (1 + max_len) * D), padded slots 0;
            "target": Z at the target token (B, D); "mean": masked mean over real tokens (B, D)
    logit = MLP([other field embeddings, pooled])

Positions: the paper's position feature is the time gap t(target) - t(behaviour); our batches carry
no timestamps, so the position is the recency rank (target 0, most recent behaviour 1, ...,
oldest ``length``), a learned embedding *added* to the token. Padded tokens are masked as keys and
dropped from the pooling, so they cannot change the output. Defaults: 1 layer (the paper's best),
1 head (the paper uses 8 on wider embeddings), MLP 1024-512-256 with LeakyReLU (paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.mlp import MLP
from ctrkit.nn.sequence import BehaviorInputs, PairView
from ctrkit.nn.transformer import TransformerLayer
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class BSTConfig:
    embedding_dim: int = 10
    sequence_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None  # see DINConfig
    target_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None
    num_layers: int = 1
    num_heads: int = 1
    ff_dim: int | None = None  # default 4 D
    attention_dropout: float = 0.0
    transformer_dropout: float = 0.0
    pooling: Literal["concat", "target", "mean"] = "concat"
    hidden_units: tuple[int, ...] = (1024, 512, 256)
    hidden_activations: str = "leaky_relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


class BSTEncoder(nn.Module):
    """Position embeddings + transformer layers + pooling for one behaviour pair of width D."""

    def __init__(self, D: int, max_len: int, config: BSTConfig):
        super().__init__()
        self.max_len, self.pooling = max_len, config.pooling
        self.position = nn.Embedding(max_len + 1, D)
        nn.init.normal_(self.position.weight, std=1e-4)
        self.layers = nn.ModuleList(
            TransformerLayer(D, config.num_heads, config.ff_dim, config.transformer_dropout, config.attention_dropout)
            for _ in range(config.num_layers)
        )
        self.output_dim = (max_len + 1) * D if config.pooling == "concat" else D

    def encode(self, p: PairView) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (Z (B, 1 + L, D), token mask (B, 1 + L), recency slot (B, 1 + L))."""
        B, L, D = p.sequence.shape
        lengths = p.mask.sum(1, keepdim=True)
        rank = (lengths - torch.arange(L, device=p.mask.device)).clamp(0, self.max_len)  # (B, L)
        slot = torch.cat([rank.new_zeros(B, 1), torch.where(p.mask, rank, 0)], 1)  # (B, 1 + L)
        mask = torch.cat([p.mask.new_ones(B, 1), p.mask], 1)
        z = torch.cat([p.target.unsqueeze(1), p.sequence], 1) + self.position(slot)
        for layer in self.layers:
            z = layer(z, mask)
        return z, mask, slot

    def forward(self, p: PairView) -> torch.Tensor:
        """-> (B, output_dim)."""
        z, mask, slot = self.encode(p)
        B, T, D = z.shape
        zm = z * mask.unsqueeze(-1).to(z.dtype)
        if self.pooling == "target":
            return z[:, 0]
        if self.pooling == "mean":
            return zm.sum(1) / mask.sum(1, keepdim=True).to(z.dtype)
        # Slot by recency into (B, max_len + 2, D); padded tokens go to the dropped last slot.
        dest = torch.where(mask, slot, self.max_len + 1)
        full = z.new_zeros(B, self.max_len + 2, D).scatter(1, dest.unsqueeze(-1).expand(-1, -1, D), zm)
        return full[:, : self.max_len + 1].flatten(1)


@register("BST", kind="sequence", reference="Chen et al., Behavior Sequence Transformer, DLP-KDD 2019")
class BST(CTRModel):
    config_class = BSTConfig
    test_params = {"hidden_units": [32, 16]}

    def __init__(self, schema: FeatureSchema, config: BSTConfig):
        super().__init__(schema, config)
        self.inputs = BehaviorInputs(schema, config.embedding_dim, config.sequence_field, config.target_field)
        self.encoders = nn.ModuleList(
            BSTEncoder(D, n, config) for D, n in zip(self.inputs.pair_dims, self.inputs.max_lens)
        )
        self.mlp = MLP(
            self.inputs.num_other * config.embedding_dim + sum(e.output_dim for e in self.encoders),
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        v = self.inputs(batch)
        pooled = [enc(p) for enc, p in zip(self.encoders, v.pairs)]
        return self.output(self.mlp(torch.cat([v.other.flatten(1), *pooled], -1)))

"""InterHAt: transformer over fields, then hierarchical attention building interactions by order.

Reference: Li et al., "Interpretable Click-Through Rate Prediction through Hierarchical
Attention", WSDM 2020. Structure and defaults from FuxiCTR ``model_zoo/InterHAt/src/InterHAt.py``:
X1 = FFN(MHSA(e)); for p = 1..order: u_p = Agg_p(X_p), X_{p+1} = u_p * X1 + X_p (element-wise,
broadcast over fields); u_f = Agg([u_1..u_order]); logit = MLP(u_f). Defaults: order 2, 1 head,
attention_dim 10 (per head), aggregation/FFN hidden size 4D, MLP 64-64 ReLU, layer norm and
residual on, no dropout. No BARS Frappe_x1 run exists for InterHAt; the Frappe_x1 config takes
its model parameters from FuxiCTR's ``InterHAt_default`` template (untuned).

Departures: heads are split per field ((B, F, H*d) -> (B, H, F, d)); FuxiCTR reshapes
(B, F, H*d) straight to (B*H, F, d), which mixes fields across heads when num_heads > 1
(identical for the default single head). PyTorch default init for attention/FFN layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.interhat import AttentionalAggregation, FeedForward, TransformerSelfAttention
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class InterHAtConfig:
    embedding_dim: int = 10
    hidden_dim: int | None = None  # aggregation and FFN hidden size; None: 4 * embedding_dim
    order: int = 2
    num_heads: int = 1
    attention_dim: int = 10  # per head
    hidden_units: tuple[int, ...] = (64, 64)
    hidden_activations: str = "relu"
    batch_norm: bool = False
    layer_norm: bool = True
    use_residual: bool = True
    net_dropout: float = 0.0


@register("InterHAt", reference="Li et al., Interpretable CTR Prediction through Hierarchical Attention, WSDM 2020")
class InterHAt(CTRModel):
    """e (B, F, D) -> X1 (B, F, D) -> [u_1..u_order] (B, order, D) -> u_f (B, D) -> MLP -> (B,)."""

    config_class = InterHAtConfig
    test_params = {"order": 3, "hidden_units": (32,)}

    def __init__(self, schema: FeatureSchema, config: InterHAtConfig):
        super().__init__(schema, config)
        c = config
        if c.order < 1:
            raise ValueError(f"InterHAt needs order >= 1, got {c.order}")
        D = c.embedding_dim
        self.embedding = FeatureEmbedding(schema, D)
        self.attention = TransformerSelfAttention(
            D, c.attention_dim, c.num_heads, dropout=c.net_dropout, use_residual=c.use_residual, layer_norm=c.layer_norm
        )
        self.feedforward = FeedForward(D, c.hidden_dim, layer_norm=c.layer_norm, use_residual=c.use_residual)
        self.aggregation = nn.ModuleList(AttentionalAggregation(D, c.hidden_dim) for _ in range(c.order))
        self.final_aggregation = AttentionalAggregation(D, c.hidden_dim)
        self.mlp = MLP(
            D,
            c.hidden_units,
            activation_name=c.hidden_activations,
            dropout=c.net_dropout,
            batch_norm=c.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        x1 = self.feedforward(self.attention(self.embedding(batch)))  # (B, F, D)
        xp = x1
        us = []
        for p, agg in enumerate(self.aggregation):
            u = agg(xp)  # (B, D)
            us.append(u)
            if p + 1 < len(self.aggregation):
                xp = u.unsqueeze(1) * x1 + xp  # one order higher
        u_f = self.final_aggregation(torch.stack(us, dim=1))  # (B, D)
        return self.output(self.mlp(u_f))

"""DESTINE: stacked disentangled self-attention over fields, optionally plus LR and a DNN.

Reference: Xu et al., "Disentangled Self-Attentive Neural Networks for Click-Through Rate
Prediction", CIKM 2021 (arXiv:2101.03654). Structure and defaults from FuxiCTR
``model_zoo/DESTINE/src/DESTINE.py``: 2 attention layers, attention_dim 16, 2 heads, attention
dropout 0.1, residual at each layer, no scaling, wide (LR) term on, no DNN; logit =
w^T flatten(attn^L(e)) [+ LR] [+ DNN(flatten(e))]. ``residual_mode`` "last_layer" adds one
projection of the embeddings after the last layer instead, "none" no residual. Tuned Frappe_x1
setting: BARS ``ranking/ctr/DESTINE/DESTINE_frappe_x1`` (4 layers, attention_dim 128, 1 head,
scale on, DNN 400-400-400 with batch norm and dropout 0.2, no wide term).

Departures: heads are split per field ((B, F, H*d) -> (B, H, F, d)) as in the paper. FuxiCTR and
the authors' code reshape (B, F, H*d) straight to (B*H, F, d), which for more than one head
mixes fields across heads (identical with one head, the tuned Frappe_x1 setting); FuxiCTR's
``net_dropout`` drives only the DNN, as here. PyTorch default init for attention projections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.destine import DisentangledSelfAttention
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.linear import LinearTerm
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class DESTINEConfig:
    embedding_dim: int = 10
    attention_dim: int = 16
    num_heads: int = 2
    attention_layers: int = 2
    dnn_hidden_units: tuple[int, ...] = ()  # empty: no DNN
    dnn_activations: str = "relu"
    net_dropout: float = 0.1
    att_dropout: float = 0.1
    relu_before_att: bool = False
    batch_norm: bool = False
    use_scale: bool = False
    use_wide: bool = True
    residual_mode: Literal["each_layer", "last_layer", "none"] = "each_layer"


@register("DESTINE", reference="Xu et al., Disentangled Self-Attentive Neural Networks for CTR Prediction, CIKM 2021")
class DESTINE(CTRModel):
    """e (B, F, D) -> L disentangled attention layers -> (B, F, attention_dim) -> linear logit."""

    config_class = DESTINEConfig
    test_params = {"attention_dim": 8, "dnn_hidden_units": (16,), "att_dropout": 0.0, "net_dropout": 0.0}

    def __init__(self, schema: FeatureSchema, config: DESTINEConfig):
        super().__init__(schema, config)
        c = config
        if c.residual_mode not in ("each_layer", "last_layer", "none"):
            raise ValueError(f"residual_mode must be each_layer, last_layer or none, not '{c.residual_mode}'")
        if c.attention_layers < 1:
            raise ValueError(f"DESTINE needs attention_layers >= 1, got {c.attention_layers}")
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        F = self.embedding.num_fields
        self.attention = nn.Sequential(
            *[
                DisentangledSelfAttention(
                    c.embedding_dim if i == 0 else c.attention_dim,
                    c.attention_dim,
                    c.num_heads,
                    dropout=c.att_dropout,
                    use_residual=c.residual_mode == "each_layer",
                    use_scale=c.use_scale,
                    relu_before_att=c.relu_before_att,
                )
                for i in range(c.attention_layers)
            ]
        )
        self.w_res = nn.Linear(c.embedding_dim, c.attention_dim) if c.residual_mode == "last_layer" else None
        self.fc = nn.Linear(F * c.attention_dim, 1)
        self.linear = LinearTerm(schema) if c.use_wide else None
        self.dnn = (
            MLP(
                F * c.embedding_dim,
                c.dnn_hidden_units,
                activation_name=c.dnn_activations,
                dropout=c.net_dropout,
                batch_norm=c.batch_norm,
                output_dim=1,
            )
            if c.dnn_hidden_units
            else None
        )

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        h = self.attention(e)  # (B, F, attention_dim)
        if self.w_res is not None:
            h = h + self.w_res(e)
        logit = self.fc(h.flatten(1)).squeeze(-1)
        if self.linear is not None:
            logit = logit + self.linear(batch)
        if self.dnn is not None:
            logit = logit + self.dnn(e.flatten(1)).squeeze(-1)
        return self.output(logit)

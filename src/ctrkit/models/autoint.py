"""AutoInt and AutoInt+: stacked multi-head self-attention over fields, optionally plus a DNN.

Reference: Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive Neural
Networks", CIKM 2019 (AutoInt: embedding -> interacting layers -> output unit on the flattened
result; AutoInt+: the same jointly trained with a DNN on the embeddings). Structure and defaults
from FuxiCTR ``model_zoo/AutoInt/src/AutoInt.py``: 2 attention layers, 1 head, attention_dim 8, no
scaling, residual on, optional wide (linear) term; FuxiCTR has one class where an empty
``dnn_hidden_units`` gives AutoInt and a non-empty one AutoInt+. Here they are two registered
names with their own defaults (AutoInt: no DNN; AutoInt+: FuxiCTR's DNN 64-64-64). Tuned
Frappe_x1 settings: BARS ``ranking/ctr/AutoInt/AutoInt_frappe_x1`` and
``ranking/ctr/AutoInt/AutoInt+_frappe_x1``.

Departures: net_dropout is applied both to attention weights and to the DNN, as in FuxiCTR (the
paper has no dropout on attention); PyTorch default initialisation instead of Xavier-normal.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.attention import MultiHeadSelfAttention
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.linear import LinearTerm
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class AutoIntConfig:
    embedding_dim: int = 10
    attention_layers: int = 2
    num_heads: int = 1
    attention_dim: int = 8
    use_scale: bool = False
    use_residual: bool = True
    layer_norm: bool = False
    use_wide: bool = False
    dnn_hidden_units: tuple[int, ...] = ()  # empty: no DNN (plain AutoInt)
    dnn_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@dataclass(frozen=True)
class AutoIntPlusConfig(AutoIntConfig):
    dnn_hidden_units: tuple[int, ...] = (64, 64, 64)


class _AutoIntBase(CTRModel):
    """logit = w^T flatten(attn^L(e)) + b [+ DNN(flatten(e))] [+ linear(batch)].

    e: (B, F, D) -> L interacting layers -> (B, F, attention_dim) -> flattened (B, F*attention_dim).
    """

    def __init__(self, schema: FeatureSchema, config: AutoIntConfig):
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        F = self.embedding.num_fields
        self.attention = nn.Sequential(
            *[
                MultiHeadSelfAttention(
                    c.embedding_dim if i == 0 else c.attention_dim,
                    c.attention_dim,
                    num_heads=c.num_heads,
                    dropout=c.net_dropout,
                    use_residual=c.use_residual,
                    use_scale=c.use_scale,
                    layer_norm=c.layer_norm,
                )
                for i in range(c.attention_layers)
            ]
        )
        # With no interacting layer the output unit reads the embeddings themselves.
        out_dim = c.attention_dim if c.attention_layers else c.embedding_dim
        self.fc = nn.Linear(F * out_dim, 1)
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
        self.linear = LinearTerm(schema, bias=False) if c.use_wide else None

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        logit = self.fc(self.attention(e).flatten(1)).squeeze(-1)
        if self.dnn is not None:
            logit = logit + self.dnn(e.flatten(1)).squeeze(-1)
        if self.linear is not None:
            logit = logit + self.linear(batch)
        return self.output(logit)


@register("AutoInt", reference="Song et al., AutoInt, CIKM 2019")
class AutoInt(_AutoIntBase):
    """AutoInt: attention only (``dnn_hidden_units=()``, ``use_wide=False`` by default)."""

    config_class = AutoIntConfig


@register("AutoInt+", reference="Song et al., AutoInt, CIKM 2019 (AutoInt+ with a jointly trained DNN)")
class AutoIntPlus(_AutoIntBase):
    """AutoInt+: attention plus a DNN on the flattened embeddings (64-64-64 by default)."""

    config_class = AutoIntPlusConfig

"""xDeepFM: a linear term, a Compressed Interaction Network and a DNN, summed into one logit.

Reference: Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for
Recommender Systems", KDD 2018. Structure and defaults from FuxiCTR
``model_zoo/xDeepFM/src/xDeepFM.py`` (linear term without bias, CIN 16-16-16 with a biased output
unit, DNN 64-64-64 on the flattened embeddings; an empty ``dnn_hidden_units`` drops the DNN and
leaves BARS's "CIN" model, LR + CIN). Tuned Frappe_x1 setting: BARS
``ranking/ctr/xDeepFM/xDeepFM_frappe_x1`` (CIN [64], DNN 400-400-400, batch norm, dropout 0.2).

Departures: the CIN has no "split half" (as FuxiCTR, unlike the paper's default); weights use
PyTorch's default initialisation rather than FuxiCTR's Xavier-normal.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.cin import CompressedInteraction
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.linear import LinearTerm
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class xDeepFMConfig:
    embedding_dim: int = 10
    dnn_hidden_units: tuple[int, ...] = (64, 64, 64)
    dnn_activations: str = "relu"
    cin_hidden_units: tuple[int, ...] = (16, 16, 16)
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("xDeepFM", reference="Lian et al., xDeepFM, KDD 2018")
class xDeepFM(CTRModel):
    """logit = linear(batch) + w^T CIN(e) + b + DNN(flatten(e)), e = field embeddings (B, F, D)."""

    config_class = xDeepFMConfig

    def __init__(self, schema: FeatureSchema, config: xDeepFMConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        F = self.embedding.num_fields
        self.linear = LinearTerm(schema, bias=False)
        self.cin = CompressedInteraction(F, config.cin_hidden_units)
        self.cin_out = nn.Linear(self.cin.output_dim, 1)
        self.dnn = (
            MLP(
                F * config.embedding_dim,
                config.dnn_hidden_units,
                activation_name=config.dnn_activations,
                dropout=config.net_dropout,
                batch_norm=config.batch_norm,
                output_dim=1,
            )
            if config.dnn_hidden_units
            else None
        )

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        logit = self.linear(batch) + self.cin_out(self.cin(e)).squeeze(-1)  # (B,)
        if self.dnn is not None:
            logit = logit + self.dnn(e.flatten(1)).squeeze(-1)
        return self.output(logit)

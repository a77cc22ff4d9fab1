"""AOANet: Architecture and Operation Adaptive Network, a DNN and a Generalized Interaction Net
side by side.

Reference: Lang et al., "Architecture and Operation Adaptive Network for Online Recommendations",
KDD 2021: the generalized interaction layer subsumes the interaction operations of FM, CIN, DCN
and others (Section 3.2); the model concatenates a DNN on the flat embeddings with the flattened
interaction subspaces into one logit layer. Layout and defaults from FuxiCTR
``model_zoo/AOANet/src/AOANet.py`` (DNN 64-64-64, 3 interaction layers, 4 subspaces). Tuned
Frappe_x1 settings: BARS ``ranking/ctr/AOANet/AOANet_frappe_x1`` (1 layer, 2 subspaces, DNN
400-400-400, batch norm, dropout 0.3).

Departures: the paper's architecture search over which layers to keep (its "architecture
adaptive" pruning of the GIN) is not run, as in FuxiCTR; the interaction is evaluated without
forming the D x D outer products (same function, see :class:`ctrkit.nn.aoanet.GeneralizedInteraction`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.aoanet import GeneralizedInteractionNet
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class AOANetConfig:
    embedding_dim: int = 10
    dnn_hidden_units: tuple[int, ...] = (64, 64, 64)
    dnn_hidden_activations: str = "relu"
    num_interaction_layers: int = 3
    num_subspaces: int = 4
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("AOANet", reference="Lang et al., AOANet, KDD 2021")
class AOANet(CTRModel):
    """e: (B, F, D); dnn = MLP(flatten(e)) (B, H); gin = GIN(e) (B, S, D);
    logit = fc([dnn, flatten(gin)]) (B, H + S*D) -> (B,)."""

    config_class = AOANetConfig
    test_params = {"dnn_hidden_units": (32, 32), "num_interaction_layers": 2, "num_subspaces": 2}

    def __init__(self, schema: FeatureSchema, config: AOANetConfig):
        super().__init__(schema, config)
        D = config.embedding_dim
        self.embedding = FeatureEmbedding(schema, D)
        F = self.embedding.num_fields
        self.dnn = MLP(
            F * D,
            config.dnn_hidden_units,
            activation_name=config.dnn_hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
        )
        self.gin = GeneralizedInteractionNet(config.num_interaction_layers, config.num_subspaces, F, D)
        self.fc = nn.Linear(self.dnn.output_dim + config.num_subspaces * D, 1)
        nn.init.xavier_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        z = torch.cat([self.dnn(e.flatten(1)), self.gin(e).flatten(1)], dim=-1)
        return self.output(self.fc(z))

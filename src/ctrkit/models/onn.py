"""ONN (NFFM): operation-aware neural network; field-aware embeddings feed an MLP.

Reference: Yang et al., "Operation-aware Neural Networks for User Response Prediction", Neural
Networks 2020: each feature has one embedding per operation, here the "copy" of itself and the
inner product with each other field (FFM's field-aware vectors); the copied embeddings and the
F(F-1)/2 field-aware inner products are concatenated into an MLP. Layout and defaults from
FuxiCTR ``model_zoo/ONN/ONN_torch/src/ONNv2.py``: one embedding of width F * D per feature,
diagonal slot = copy, MLP 64-64-64 ReLU, no dropout, no batch norm, embedding_dim 2. BARS has no
Frappe_x1 run.

Departures: none. (The paper also lists a product-based "operation" variant; like FuxiCTR, only the
inner product is used.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.field_aware import FieldAwareEmbedding, FieldAwarePairs, diagonal
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class ONNConfig:
    embedding_dim: int = 2
    hidden_units: tuple[int, ...] = (64, 64, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("ONN", reference="Yang et al., Operation-aware Neural Networks, Neural Networks 2020")
class ONN(CTRModel):
    """e: (B, F, F, D) -> MLP([flatten(diag(e)) (B, F*D), <v_ij, v_ji> (B, F(F-1)/2)]) -> (B,)."""

    config_class = ONNConfig

    def __init__(self, schema: FeatureSchema, config: ONNConfig):
        super().__init__(schema, config)
        self.embedding = FieldAwareEmbedding(schema, config.embedding_dim, include_self=True)
        F = self.embedding.num_fields
        self.pairs = FieldAwarePairs(F, include_self=True)
        self.mlp = MLP(
            F * config.embedding_dim + self.pairs.num_pairs,
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, F, D)
        x = torch.cat([diagonal(e).flatten(1), self.pairs(e).sum(dim=-1)], dim=1)
        return self.output(self.mlp(x))

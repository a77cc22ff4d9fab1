"""DNN: field embeddings concatenated into an MLP (BARS's "YoutubeDNN"/DNN baseline).

Reference: Covington et al., "Deep Neural Networks for YouTube Recommendations", RecSys 2016, as
configured by BARS (``DNN_frappe_x1``: FuxiCTR ``DNN``, embedding dim 10, MLP 400-400-400, ReLU,
batch norm, dropout 0.2 or 0.3 by dataset).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class DNNConfig:
    embedding_dim: int = 10
    hidden_units: tuple[int, ...] = (400, 400, 400)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("DNN", reference="Covington et al., YouTube DNN, RecSys 2016 (BARS DNN baseline)")
class DNN(CTRModel):
    config_class = DNNConfig

    def __init__(self, schema: FeatureSchema, config: DNNConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.mlp = MLP(
            self.embedding.num_fields * config.embedding_dim,
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        return self.output(self.mlp(e.flatten(1)))

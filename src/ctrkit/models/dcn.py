"""DCN: Deep & Cross Network, a cross network and an MLP side by side on the flat embeddings.

Reference: Wang et al., "Deep & Cross Network for Ad Click Predictions", ADKDD 2017, Section 2
(embedding and stacking layer, cross network, deep network, combination layer: one logit layer on
[x_L1, h_L2]). Layout from FuxiCTR ``model_zoo/DCN/DCN_torch/src/DCN.py`` with its layers in
``fuxictr/pytorch/layers/interactions/cross_net.py``. Defaults: embedding_dim 10 and 3 cross layers
(FuxiCTR's constructor); dnn_hidden_units 1024-512-256 from FuxiCTR's ``DCN_default`` config
template, because the constructor default ``[]`` drops the deep network (which BARS reports as a
separate model, CrossNet; ``dnn_hidden_units=()`` gives it here too). Tuned Frappe_x1 settings:
BARS ``ranking/ctr/DCN/DCN_frappe_x1`` (FuxiCTR v1.1.0 named num_cross_layers ``crossing_layers``).

Departures: none in structure. The paper also feeds raw dense features next to the embeddings;
here numeric fields are embedded like every field (see :class:`ctrkit.nn.FeatureEmbedding`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.cross import CrossNet
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class DCNConfig:
    embedding_dim: int = 10
    dnn_hidden_units: tuple[int, ...] = (1024, 512, 256)
    dnn_activations: str = "relu"
    num_cross_layers: int = 3
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("DCN", reference="Wang et al., Deep & Cross Network for Ad Click Predictions, ADKDD 2017")
class DCN(CTRModel):
    """logit = fc([CrossNet(x0), MLP(x0)]) with x0 = flatten(e).

    e: (B, F, D) -> x0: (B, d), d = F*D; cross: (B, d); MLP: (B, h_last); fc: (B, d + h_last) -> (B, 1).
    """

    config_class = DCNConfig

    def __init__(self, schema: FeatureSchema, config: DCNConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        d = self.embedding.num_fields * config.embedding_dim
        self.crossnet = CrossNet(d, config.num_cross_layers)
        self.dnn: MLP | None = None
        final_dim = d
        if config.dnn_hidden_units:
            self.dnn = MLP(
                d,
                config.dnn_hidden_units,
                activation_name=config.dnn_activations,
                dropout=config.net_dropout,
                batch_norm=config.batch_norm,
            )
            final_dim += self.dnn.output_dim
        self.fc = nn.Linear(final_dim, 1)

    def forward(self, batch: Batch) -> ModelOutput:
        x0 = self.embedding(batch).flatten(1)  # (B, F*D)
        out = self.crossnet(x0)
        if self.dnn is not None:
            out = torch.cat([out, self.dnn(x0)], dim=-1)
        return self.output(self.fc(out))

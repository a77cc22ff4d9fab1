"""CrossNet: DCN's cross network alone, with one output layer (BARS's "CrossNet" row).

Reference: Wang et al., "Deep & Cross Network for Ad Click Predictions", ADKDD 2017, Section 2.2
(the cross network) without the deep network of Section 2.3. BARS runs it as FuxiCTR ``DCN`` with
``dnn_hidden_units: None`` (``ranking/ctr/DCN/CrossNet_frappe_x1``, FuxiCTR v1.1.0, whose
``crossing_layers`` is ``num_cross_layers`` here). Defaults: embedding_dim 10 and 3 cross layers
(FuxiCTR's DCN constructor).

Departures: none in structure; numeric fields are embedded like every field (see
:class:`ctrkit.nn.FeatureEmbedding`) rather than fed raw.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.cross import CrossNet
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class CrossNetConfig:
    embedding_dim: int = 10
    num_cross_layers: int = 3


@register("CrossNet", reference="Wang et al., Deep & Cross Network (cross network only), ADKDD 2017")
class CrossNetModel(CTRModel):
    """logit = w^T CrossNet(x0) + b, x0 = flatten(e): (B, F*D) -> (B, F*D) -> (B,)."""

    config_class = CrossNetConfig

    def __init__(self, schema: FeatureSchema, config: CrossNetConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        d = self.embedding.num_fields * config.embedding_dim
        self.crossnet = CrossNet(d, config.num_cross_layers)
        self.fc = nn.Linear(d, 1)

    def forward(self, batch: Batch) -> ModelOutput:
        x0 = self.embedding(batch).flatten(1)  # (B, F*D)
        return self.output(self.fc(self.crossnet(x0)))

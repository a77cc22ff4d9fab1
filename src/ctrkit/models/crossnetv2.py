"""CrossNetV2: DCN-V2's cross network alone, with one output layer (BARS's "CrossNet-V2" row).

Reference: Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale
Learning to Rank Systems", WWW 2021, Section 3 (cross layer x_{l+1} = x_0 * (W_l x_l + b_l) + x_l,
and its mixture of low-rank experts). BARS runs it as FuxiCTR ``DCNv2`` with
``model_structure: crossnet_only`` (``ranking/ctr/DCNv2/CrossNetv2_frappe_x1``). Defaults:
FuxiCTR's DCNv2 constructor (3 cross layers, full rank; low_rank 32 and 4 experts when the mixture
is switched on).

Departures: as :class:`ctrkit.models.dcnv2.DCNv2` (per-matrix init of the mixture's experts).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.cross import CrossNetMix, CrossNetV2
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class CrossNetV2Config:
    embedding_dim: int = 10
    num_cross_layers: int = 3
    use_low_rank_mixture: bool = False
    low_rank: int = 32
    num_experts: int = 4


@register("CrossNetV2", reference="Wang et al., DCN V2 (cross network only), WWW 2021")
class CrossNetV2Model(CTRModel):
    """logit = w^T CrossNetV2(x0) + b, x0 = flatten(e): (B, F*D) -> (B, F*D) -> (B,)."""

    config_class = CrossNetV2Config

    def __init__(self, schema: FeatureSchema, config: CrossNetV2Config):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        d = self.embedding.num_fields * config.embedding_dim
        if config.use_low_rank_mixture:
            self.crossnet: nn.Module = CrossNetMix(
                d, config.num_cross_layers, low_rank=config.low_rank, num_experts=config.num_experts
            )
        else:
            self.crossnet = CrossNetV2(d, config.num_cross_layers)
        self.fc = nn.Linear(d, 1)

    def forward(self, batch: Batch) -> ModelOutput:
        x0 = self.embedding(batch).flatten(1)  # (B, F*D)
        return self.output(self.fc(self.crossnet(x0)))

"""CCPM: convolutional click prediction model; stacked wide convolutions over the field axis.

Reference: Liu et al., "A Convolutional Click Prediction Model", CIKM 2015: the embedding matrix
(fields x D) goes through l layers of wide 1-D convolution along the field axis, flexible p-max
pooling (k_i = (1 - (i/l)^(l-i)) F, 3 for the last layer) and tanh, then a fully connected output.
Layout and defaults from FuxiCTR ``model_zoo/CCPM/src/CCPM.py``: channels [4, 4, 2],
kernel_heights [6, 5, 3], activation tanh, embedding_dim 10; output ``nn.Linear(3 * D * c_l, 1)``.
BARS has no Frappe_x1 run.

Departures: none. Like FuxiCTR, pooling sizes are floored at 3; embedding coordinates are separate
rows of the convolution (kernel (k, 1)), as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.conv import CCPMConv
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class CCPMConfig:
    embedding_dim: int = 10
    channels: tuple[int, ...] = (4, 4, 2)
    kernel_heights: tuple[int, ...] = (6, 5, 3)
    activation: str = "tanh"


@register("CCPM", reference="Liu et al., A Convolutional Click Prediction Model, CIKM 2015")
class CCPM(CTRModel):
    """e: (B, F, D) -> conv stack (B, c_l, 3, D) -> flatten (B, 3*D*c_l) -> fc -> (B,)."""

    config_class = CCPMConfig

    def __init__(self, schema: FeatureSchema, config: CCPMConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.conv = CCPMConv(
            self.embedding.num_fields, config.channels, config.kernel_heights, config.activation
        )
        self.fc = nn.Linear(self.conv.out_height * config.embedding_dim * self.conv.out_channels, 1)
        nn.init.xavier_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.conv(self.embedding(batch))  # (B, c_l, 3, D)
        return self.output(self.fc(x.flatten(1)))

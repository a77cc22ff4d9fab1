"""Logistic regression over one-hot features.

Reference: Richardson et al., "Predicting Clicks", WWW 2007; BARS config ``LR_frappe_x1``
(FuxiCTR ``LR``: one weight per feature value plus a bias).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.linear import LinearTerm
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class LRConfig:
    """LR has no hyper-parameters of its own (regularisation belongs to the training config)."""


@register("LR", reference="Richardson et al., Predicting Clicks, WWW 2007")
class LR(CTRModel):
    config_class = LRConfig

    def __init__(self, schema: FeatureSchema, config: LRConfig):
        super().__init__(schema, config)
        self.linear = LinearTerm(schema)

    def forward(self, batch: Batch) -> ModelOutput:
        return self.output(self.linear(batch))

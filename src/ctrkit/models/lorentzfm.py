"""LorentzFM: factorization machine in hyperbolic space, scoring pairs by a triangle inequality.

Reference: Xu et al., "Learning Feature Interactions with Lorentzian Factorization Machine",
AAAI 2020: embeddings are points on the hyperboloid (time coordinate u0 = sqrt(1 + |u|^2)),
and each field pair contributes the triangle-pooling score
T(u, v) = (1 - <u, v>_L - u0 - v0) / (u0 v0); the logit is the sum over pairs. No linear term,
no bias, no weights besides the embeddings. Layout and defaults from FuxiCTR
``model_zoo/LorentzFM/src/LorentzFM.py``: embedding_dim 10. BARS has no Frappe_x1 run.

Departures: none (FuxiCTR's unused ``embedding_dropout`` is omitted).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.fm_family import lorentz_triangle_pooling
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class LorentzFMConfig:
    embedding_dim: int = 10


@register("LorentzFM", reference="Xu et al., Lorentzian Factorization Machine, AAAI 2020")
class LorentzFM(CTRModel):
    """logit = sum_{i<j} T(e_i, e_j); e: (B, F, D) -> (B,)."""

    config_class = LorentzFMConfig

    def __init__(self, schema: FeatureSchema, config: LorentzFMConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        rows, cols = torch.triu_indices(self.embedding.num_fields, self.embedding.num_fields, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        return self.output(lorentz_triangle_pooling(e, self.rows, self.cols))

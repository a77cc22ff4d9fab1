"""FFM: field-aware factorization machine; each feature keeps one latent vector per other field.

Reference: Juan et al., "Field-aware Factorization Machines for CTR Prediction", RecSys 2016,
Eq. (3): phi = sum_{j1<j2} <w_{j1,f2}, w_{j2,f1}> x_{j1} x_{j2}. Layout and defaults from FuxiCTR
``model_zoo/FFM/src/FFM.py`` / ``FFMv2.py``: ``LogisticRegression(use_bias=True)`` plus the
field-aware pairwise sum, F - 1 vectors per feature, embedding_dim 2 (FuxiCTR's constructor).
Tuned Frappe_x1 settings: BARS ``ranking/ctr/FFM/FFM_frappe_x1`` (embedding_dim 10,
regularizer 1e-6; 490,400 parameters).

The F - 1 vectors of a feature are one row of a single fused table of width (F - 1) * D (FuxiCTR's
FFMv2 layout, see :mod:`ctrkit.nn.field_aware`), so the lookup is one gather, not F - 1 tables as
in FuxiCTR's FFM (same parameters, same function). Departures: none in the model; FuxiCTR's single
``regularizer`` is the training config's embedding_regularizer and net_regularizer set equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.field_aware import FieldAwareEmbedding, FieldAwarePairs
from ctrkit.nn.linear import LinearTerm
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class FFMConfig:
    embedding_dim: int = 2


@register("FFM", reference="Juan et al., Field-aware Factorization Machines, RecSys 2016")
class FFM(CTRModel):
    """logit = b + sum_f w_f + sum_{i<j} <v_{i,j}, v_{j,i}>.

    field-aware embeddings (B, F, F-1, D) -> pair products (B, F(F-1)/2, D) -> (B,).
    """

    config_class = FFMConfig

    def __init__(self, schema: FeatureSchema, config: FFMConfig):
        super().__init__(schema, config)
        self.embedding = FieldAwareEmbedding(schema, config.embedding_dim, include_self=False)
        self.pairs = FieldAwarePairs(self.embedding.num_fields, include_self=False)
        self.linear = LinearTerm(schema)

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, F-1, D)
        return self.output(self.linear(batch) + self.pairs(e).sum(dim=(1, 2)))

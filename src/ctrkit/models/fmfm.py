"""FmFM: field-matrixed factorization machine; a learned matrix between every field pair.

Reference: Sun et al., "FM^2: Field-matrixed Factorization Machines for Recommender Systems",
WWW 2021, Eq. (5): phi = w_0 + linear + sum_{i<j} <v_i M_{F(i),F(j)}, v_j>; FwFM is the case
M = r I and FvFM ("vectorized") the case of diagonal M. Layout and defaults from FuxiCTR
``model_zoo/FmFM/src/FmFM.py``: ``LogisticRegression`` (with bias) plus the field-matrixed term,
field_interaction_type "matrixed", Xavier-normal matrices, embedding_dim 10. Tuned Frappe_x1
settings: BARS ``ranking/ctr/FmFM/FmFM_frappe_x1`` ("vectorized", regularizer 1e-5, 200 epochs;
59,730 parameters).

Departures: none. The paper's per-field embedding sizes (its dimension-optimisation step) are
not modelled, as in FuxiCTR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.fm_family import FieldMatrixedInteraction
from ctrkit.nn.linear import LinearTerm
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class FmFMConfig:
    embedding_dim: int = 10
    field_interaction_type: Literal["matrixed", "vectorized"] = "matrixed"


@register("FmFM", reference="Sun et al., FM^2: Field-matrixed Factorization Machines, WWW 2021")
class FmFM(CTRModel):
    """logit = b + sum_f w_f + sum_{i<j} <e_i M_ij, e_j>; e: (B, F, D), M: (P, D, D) or (P, D)."""

    config_class = FmFMConfig

    def __init__(self, schema: FeatureSchema, config: FmFMConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.interaction = FieldMatrixedInteraction(
            self.embedding.num_fields, config.embedding_dim, config.field_interaction_type
        )
        self.linear = LinearTerm(schema)

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        return self.output(self.linear(batch) + self.interaction(e))

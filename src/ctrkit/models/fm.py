"""FM: factorization machine, first-order weights plus pairwise embedding inner products.

Reference: Rendle, "Factorization Machines", ICDM 2010: model equation (Eq. 1) and its
linear-time form (Lemma 3.1). Layout and defaults from FuxiCTR ``model_zoo/FM/src/FM.py``
(``FactorizationMachine`` = ``LogisticRegression(use_bias=True)`` + ``InnerProductInteraction``
``"product_sum"``), embedding_dim 10. Tuned Frappe_x1 settings: BARS ``ranking/ctr/FM/FM_frappe_x1``.

Departures: none in the model. FuxiCTR's FM takes a single ``regularizer`` that it applies to both
embeddings and the rest; in ctrkit that is the training config's embedding_regularizer and
net_regularizer set to the same value (see ``configs/bars/frappe_x1/FM.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.interactions import FMInteraction
from ctrkit.nn.linear import LinearTerm
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class FMConfig:
    embedding_dim: int = 10


@register("FM", reference="Rendle, Factorization Machines, ICDM 2010")
class FM(CTRModel):
    """logit = b + sum_f w_f + sum_{i<j} <v_i, v_j>.

    batch -> field embeddings (B, F, D) -> pairwise term (B,); plus first-order term (B,).
    """

    config_class = FMConfig

    def __init__(self, schema: FeatureSchema, config: FMConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.linear = LinearTerm(schema)
        self.fm = FMInteraction()

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        return self.output(self.linear(batch) + self.fm(e))

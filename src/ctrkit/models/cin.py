"""CIN: xDeepFM's Compressed Interaction Network with the linear term, no DNN (BARS's "CIN" row).

Reference: Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for
Recommender Systems", KDD 2018, Section 3 (CIN; the paper's Eq. 10 output with the linear part).
BARS runs it as FuxiCTR v1.1.0 ``xDeepFM`` with ``dnn_hidden_units: None``
(``ranking/ctr/xDeepFM/CIN_frappe_x1``: CIN 64-64-64): logit = LR (no bias) + w^T CIN(e) + b.
Defaults: FuxiCTR's xDeepFM constructor (CIN 16-16-16, embedding_dim 10).

Departures: as :class:`ctrkit.models.xdeepfm.xDeepFM` (no "split half"; PyTorch default init of
the CIN convolutions).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.cin import CompressedInteraction
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.linear import LinearTerm
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class CINConfig:
    embedding_dim: int = 10
    cin_hidden_units: tuple[int, ...] = (16, 16, 16)


@register("CIN", reference="Lian et al., xDeepFM (CIN and linear part only), KDD 2018")
class CINModel(CTRModel):
    """logit = linear(batch) + w^T CIN(e) + b; e: (B, F, D), CIN(e): (B, sum(cin_hidden_units))."""

    config_class = CINConfig

    def __init__(self, schema: FeatureSchema, config: CINConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.linear = LinearTerm(schema, bias=False)
        self.cin = CompressedInteraction(self.embedding.num_fields, config.cin_hidden_units)
        self.cin_out = nn.Linear(self.cin.output_dim, 1)

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        return self.output(self.linear(batch) + self.cin_out(self.cin(e)).squeeze(-1))

"""FwFM: field-weighted factorization machine; one learned weight per field pair.

Reference: Pan et al., "Field-weighted Factorization Machines for Click-Through Rate Prediction in
Display Advertising", WWW 2018: phi = w_0 + linear + sum_{i<j} <v_i, v_j> r_{F(i),F(j)}, with the
linear-term variants of Sec. 3.1: LW (a scalar per feature), FeLV (a vector per feature, dotted
with its embedding) and FiLV (a vector per field). Layout and defaults from FuxiCTR
``model_zoo/FwFM/src/FwFM.py``: the pair weights are ``nn.Linear(F(F-1)/2, 1)`` on the inner
products, whose bias is the model's only bias; linear_type FiLV; embedding_dim 10. Tuned
Frappe_x1 settings: BARS ``ranking/ctr/FwFM/FwFM_frappe_x1`` (FeLV, regularizer 5e-6;
107,826 parameters).

Departures: none in the model. Pair weights are Xavier-normal with a zero bias (FuxiCTR's
re-initialisation of every Linear).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.interactions import InnerProductPairs
from ctrkit.schema import FeatureSchema

LinearType = Literal["LW", "FeLV", "FiLV"]


@dataclass(frozen=True)
class FwFMConfig:
    embedding_dim: int = 10
    linear_type: LinearType = "FiLV"


@register("FwFM", reference="Pan et al., Field-weighted Factorization Machines, WWW 2018")
class FwFM(CTRModel):
    """logit = r^T ip(e) + b + linear, ip(e): (B, F(F-1)/2) inner products of field pairs.

    linear: LW sum_f w_f (B,); FeLV sum_f <e_f, w_f> (B,); FiLV w^T flatten(e) (B,).
    """

    config_class = FwFMConfig

    def __init__(self, schema: FeatureSchema, config: FwFMConfig):
        super().__init__(schema, config)
        D = config.embedding_dim
        self.embedding = FeatureEmbedding(schema, D)
        F = self.embedding.num_fields
        self.inner = InnerProductPairs(F)
        self.pair_weight = nn.Linear(self.inner.num_pairs, 1)
        nn.init.xavier_normal_(self.pair_weight.weight)
        nn.init.zeros_(self.pair_weight.bias)
        self.linear_type = config.linear_type
        if config.linear_type == "LW":
            self.linear_weight: nn.Module = FeatureEmbedding(schema, 1)
        elif config.linear_type == "FeLV":
            self.linear_weight = FeatureEmbedding(schema, D)
        elif config.linear_type == "FiLV":
            self.linear_weight = nn.Linear(F * D, 1, bias=False)
            nn.init.xavier_normal_(self.linear_weight.weight)
        else:
            raise ValueError(f"FwFM linear_type must be LW, FeLV or FiLV, got {config.linear_type!r}")

    def linear_term(self, batch: Batch, e: torch.Tensor) -> torch.Tensor:
        if self.linear_type == "LW":
            return self.linear_weight(batch).sum(dim=(1, 2))
        if self.linear_type == "FeLV":
            return (e * self.linear_weight(batch)).sum(dim=(1, 2))
        return self.linear_weight(e.flatten(1)).squeeze(-1)

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        poly2 = self.pair_weight(self.inner(e)).squeeze(-1)  # (B,), holds the bias
        return self.output(poly2 + self.linear_term(batch, e))

"""The first-order (logistic-regression) term shared by LR, FM, Wide&Deep, DeepFM, xDeepFM, ..."""

from __future__ import annotations

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.schema import FeatureSchema


class LinearTerm(nn.Module):
    """sum_f w_f(x_f) + b: one scalar weight per categorical value (a dim-1 fused table), value x
    weight for numeric fields, mean-pooled weights for sequence fields.

    batch -> (B,) float32.
    """

    def __init__(self, schema: FeatureSchema, *, bias: bool = True):
        super().__init__()
        # Dim-1 rows of the same fused layout; FuxiCTR's LogisticRegression initialises them to 0
        # through its own embedding init; a tiny normal init behaves the same in practice.
        self.weights = FeatureEmbedding(schema, 1)
        self.bias = nn.Parameter(torch.zeros(1)) if bias else None

    def forward(self, batch: Batch) -> torch.Tensor:
        out = self.weights(batch).sum(dim=(1, 2))
        return out + self.bias if self.bias is not None else out

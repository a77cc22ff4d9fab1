"""HOFM: higher-order factorization machine; ANOVA-kernel interactions of orders 2..m.

Reference: Blondel et al., "Higher-Order Factorization Machines", NIPS 2016, Eq. (2): the
order-t term is the ANOVA kernel A^t over the features' order-t embeddings, summed for
t = 2..m, plus a linear term and bias. Layout and defaults from FuxiCTR
``model_zoo/HOFM/src/HOFM.py``: ``LogisticRegression(use_bias=True)``, order 3, embedding_dim 10,
a separate embedding per order (reuse_embedding False). Tuned Frappe_x1 settings: BARS
``ranking/ctr/HOFM/HOFM_frappe_x1`` (order 3, regularizer 1e-6, 200 epochs; 113,170 parameters).

The order-t embeddings are slices of one fused table row of width (m - 1) * D, so one gather
serves all orders. Each order's kernel is computed from power sums (Newton's identities,
:func:`ctrkit.nn.fm_family.anova_kernel`) in O(m F D), not by enumerating the C(F, t) field
subsets as FuxiCTR does; the value is the same. Departures: ``embedding_dim`` is one int for every
order (FuxiCTR also accepts a per-order list); FuxiCTR's unused ``embedding_dropout`` is omitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.fm_family import anova_kernel
from ctrkit.nn.linear import LinearTerm
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class HOFMConfig:
    embedding_dim: int = 10
    order: int = 3
    reuse_embedding: bool = False


@register("HOFM", reference="Blondel et al., Higher-Order Factorization Machines, NIPS 2016")
class HOFM(CTRModel):
    """logit = b + sum_f w_f + sum_{t=2..m} A^t(e^(t)).

    e^(t): (B, F, D), order t's embeddings (the same tensor for every t when reuse_embedding);
    A^t: (B,).
    """

    config_class = HOFMConfig

    def __init__(self, schema: FeatureSchema, config: HOFMConfig):
        super().__init__(schema, config)
        if config.order < 2:
            raise ValueError(f"HOFM needs order >= 2, got {config.order}")
        self.order = config.order
        self.dim = config.embedding_dim
        self.tables = 1 if config.reuse_embedding else config.order - 1
        self.embedding = FeatureEmbedding(schema, self.tables * config.embedding_dim)
        self.linear = LinearTerm(schema)

    def order_embeddings(self, batch: Batch) -> list[torch.Tensor]:
        """[e^(2), ..., e^(m)], each (B, F, D)."""
        e = self.embedding(batch)
        parts = e.split(self.dim, dim=-1)  # tables x (B, F, D)
        return [parts[0 if self.tables == 1 else t - 2] for t in range(2, self.order + 1)]

    def forward(self, batch: Batch) -> ModelOutput:
        logit = self.linear(batch)
        for t, e in zip(range(2, self.order + 1), self.order_embeddings(batch)):
            logit = logit + anova_kernel(e, t)
        return self.output(logit)

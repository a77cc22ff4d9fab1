"""IPNN: inner-product PNN; field embeddings and all their pairwise inner products feed an MLP.

Reference: Qu et al., "Product-based Neural Networks for User Response Prediction", ICDM 2016,
Section III (product layer with linear signals l_z and inner-product signals l_p, then hidden
layers). Layout and defaults from FuxiCTR ``model_zoo/PNN/src/PNN.py`` (``product_type="inner"``):
MLP input is [flatten(e), inner products], hidden_units 64-64-64, ReLU, no dropout, no batch norm,
embedding_dim 10. Tuned Frappe_x1 settings: BARS ``ranking/ctr/PNN/IPNN_frappe_x1``.

Departures from the paper (shared with FuxiCTR/BARS): the product layer's weights are the first
MLP layer acting on the concatenation, so l_z and l_p are full-rank linear maps of the embeddings
and of the raw inner products; the paper's first-order decomposition theta_n theta_n^T of the
inner-product weights is not used (it only saves parameters when F is large).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.interactions import InnerProductPairs
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class IPNNConfig:
    embedding_dim: int = 10
    hidden_units: tuple[int, ...] = (64, 64, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("IPNN", reference="Qu et al., Product-based Neural Networks, ICDM 2016")
class IPNN(CTRModel):
    """logit = MLP([flatten(e), <v_i, v_j> for i < j]).

    e: (B, F, D) -> (B, F*D) and (B, F*(F-1)/2) -> MLP -> (B, 1).
    """

    config_class = IPNNConfig

    def __init__(self, schema: FeatureSchema, config: IPNNConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        num_fields = self.embedding.num_fields
        self.products = InnerProductPairs(num_fields)
        self.mlp = MLP(
            num_fields * config.embedding_dim + self.products.num_pairs,
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        x = torch.cat([e.flatten(1), self.products(e)], dim=1)  # (B, F*D + F(F-1)/2)
        return self.output(self.mlp(x))

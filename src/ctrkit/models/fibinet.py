"""FiBiNET: SENET field importance and bilinear pair interactions, fed to a DNN, plus a linear term.

Reference: Huang et al., "FiBiNET: Combining Feature Importance and Bilinear feature Interaction
for Click-Through Rate Prediction", RecSys 2019. Structure and defaults from FuxiCTR
``model_zoo/FiBiNET/src/FiBiNET.py``: the raw embeddings p and the SENET re-weighted ones q each
go through their own bilinear layer, the two (B, F(F-1)/2, D) results are concatenated and
flattened into the DNN (no hidden layer by default, i.e. a linear output unit), and a linear term
without bias is added. Tuned Frappe_x1 setting: BARS ``ranking/ctr/FiBiNET/FiBiNET_frappe_x1``
(field_all bilinear, reduction ratio 2, DNN 400-400-400, batch norm, dropout 0.3).

Departures: the paper's "shallow" FiBiNET sums the pair vectors instead of concatenating; like
FuxiCTR this only offers the concatenating (deep) form. PyTorch default initialisation for
linear layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.bilinear import BilinearInteraction, BilinearType, SqueezeExcitation
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.linear import LinearTerm
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class FiBiNETConfig:
    embedding_dim: int = 10
    hidden_units: tuple[int, ...] = ()
    hidden_activations: str = "relu"
    excitation_activation: str = "relu"
    reduction_ratio: float = 3
    bilinear_type: BilinearType = "field_interaction"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("FiBiNET", reference="Huang et al., FiBiNET, RecSys 2019")
class FiBiNET(CTRModel):
    """logit = linear(batch) + DNN([bilinear_p(e), bilinear_q(SENET(e))]), e: (B, F, D)."""

    config_class = FiBiNETConfig

    def __init__(self, schema: FeatureSchema, config: FiBiNETConfig):
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        F = self.embedding.num_fields
        self.senet = SqueezeExcitation(F, c.reduction_ratio, c.excitation_activation)
        self.bilinear_p = BilinearInteraction(F, c.embedding_dim, c.bilinear_type)
        self.bilinear_q = BilinearInteraction(F, c.embedding_dim, c.bilinear_type)
        self.linear = LinearTerm(schema, bias=False)
        self.dnn = MLP(
            2 * self.bilinear_p.num_pairs * c.embedding_dim,  # = F (F - 1) D
            c.hidden_units,
            activation_name=c.hidden_activations,
            dropout=c.net_dropout,
            batch_norm=c.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        p = self.bilinear_p(e)  # (B, P, D)
        q = self.bilinear_q(self.senet(e))  # (B, P, D)
        logit = self.dnn(torch.cat([p, q], dim=1).flatten(1)).squeeze(-1) + self.linear(batch)
        return self.output(logit)

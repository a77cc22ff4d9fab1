"""DeepFM: an FM and an MLP sharing one set of field embeddings, logits summed.

Reference: Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR Prediction",
IJCAI 2017, Section 2.1 (y = sigmoid(y_FM + y_DNN), shared embeddings, no pre-training). Layout
and defaults from FuxiCTR ``model_zoo/DeepFM/DeepFM_torch/src/DeepFM.py``: first-order term plus
pairwise term plus ``MLP_Block`` with hidden_units 64-64-64, ReLU, no dropout, no batch norm,
embedding_dim 10. Tuned Frappe_x1 settings: BARS ``ranking/ctr/DeepFM/DeepFM_frappe_x1``.

The one global bias is the MLP's output bias, as in FuxiCTR v1.x (``FM_Layer_v2(use_bias=False)``),
the version BARS ran: with it the parameter count equals the BARS log's (423,280 on Frappe_x1).
Current FuxiCTR adds a second, redundant bias to the first-order term.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.interactions import FMInteraction
from ctrkit.nn.linear import LinearTerm
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class DeepFMConfig:
    embedding_dim: int = 10
    hidden_units: tuple[int, ...] = (64, 64, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("DeepFM", reference="Guo et al., DeepFM, IJCAI 2017")
class DeepFM(CTRModel):
    """logit = linear(batch) + FM(e) + MLP(flatten(e)).

    e: (B, F, D); linear and FM: (B,); MLP: (B, F*D) -> (B, 1).
    """

    config_class = DeepFMConfig

    def __init__(self, schema: FeatureSchema, config: DeepFMConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.linear = LinearTerm(schema, bias=False)  # the MLP output layer holds the bias
        self.fm = FMInteraction()
        self.mlp = MLP(
            self.embedding.num_fields * config.embedding_dim,
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        logit = self.linear(batch) + self.fm(e) + self.mlp(e.flatten(1)).squeeze(-1)
        return self.output(logit)

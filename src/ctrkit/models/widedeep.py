"""Wide&Deep: a linear model on the raw features plus an MLP on their embeddings, summed.

Reference: Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016, Section 3
(joint training, logit = w_wide^T x + w_deep^T a + b). Layout and defaults from FuxiCTR
``model_zoo/WideDeep/WideDeep_torch/src/WideDeep.py``: the wide part is
``LogisticRegression(use_bias=False)`` (the bias b lives in the MLP's output layer), deep part
``MLP_Block`` with hidden_units 64-64-64, ReLU, no dropout, no batch norm, embedding_dim 10. Tuned
Frappe_x1 settings: BARS ``ranking/ctr/WideDeep/WideDeep_frappe_x1``.

Departures from the paper (all shared with FuxiCTR/BARS): the wide part sees only the raw
features, not hand-made cross-product transformations; both parts use the one optimizer the
trainer picks (the paper trains the wide part with FTRL + L1 and the deep part with AdaGrad).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.linear import LinearTerm
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class WideDeepConfig:
    embedding_dim: int = 10
    hidden_units: tuple[int, ...] = (64, 64, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("WideDeep", reference="Cheng et al., Wide & Deep Learning for Recommender Systems, DLRS 2016")
class WideDeep(CTRModel):
    """logit = wide(batch) + MLP(flatten(e)).

    wide: (B,) first-order term without bias; e: (B, F, D) -> MLP input (B, F*D) -> (B, 1).
    """

    config_class = WideDeepConfig

    def __init__(self, schema: FeatureSchema, config: WideDeepConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        # No bias here: the MLP's output layer already has one (as in FuxiCTR).
        self.linear = LinearTerm(schema, bias=False)
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
        return self.output(self.linear(batch) + self.mlp(e.flatten(1)).squeeze(-1))

"""NFM: neural factorization machine; an MLP on the bi-interaction pooled vector.

Reference: He and Chua, "Neural Factorization Machines for Sparse Predictive Analytics",
SIGIR 2017, Eq. (3)-(4): f_BI(V) = sum_{i<j} x_i v_i * x_j v_j (a D-vector), fed to hidden layers,
plus a linear term. Layout and defaults from FuxiCTR ``model_zoo/NFM/src/NFM.py``:
``LogisticRegression(use_bias=False)`` (the MLP output layer holds the bias), bi-interaction,
``MLP_Block`` 64-64-64 ReLU, no dropout, no batch norm, embedding_dim 10. Tuned Frappe_x1
settings: BARS ``ranking/ctr/NFM/NFM_frappe_x1`` (400-400-400, net_dropout 0.4,
embedding_regularizer 1e-4, 200 epochs; 384,880 parameters).

Departures: the paper's dropout and batch norm on the bi-interaction vector itself are not applied
(FuxiCTR neither; its ``embedding_dropout`` is unused there).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.interactions import bi_interaction
from ctrkit.nn.linear import LinearTerm
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class NFMConfig:
    embedding_dim: int = 10
    hidden_units: tuple[int, ...] = (64, 64, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("NFM", reference="He and Chua, Neural Factorization Machines, SIGIR 2017")
class NFM(CTRModel):
    """logit = sum_f w_f + MLP(bi_interaction(e)); e: (B, F, D) -> (B, D) -> (B, 1)."""

    config_class = NFMConfig

    def __init__(self, schema: FeatureSchema, config: NFMConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.linear = LinearTerm(schema, bias=False)
        self.mlp = MLP(
            config.embedding_dim,
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        bi = bi_interaction(self.embedding(batch))  # (B, D)
        return self.output(self.linear(batch) + self.mlp(bi).squeeze(-1))

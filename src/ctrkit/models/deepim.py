"""DeepIM: an interaction machine (all field interactions up to order k) plus a DNN.

Reference: Yu et al., "Deep Interaction Machine: A Simple but Effective Model for High-order
Feature Interactions", CIKM 2020. Structure and defaults from FuxiCTR
``model_zoo/DeepIM/src/DeepIM.py``: order 2, no batch norm in the IM, DNN 64-64-64 with ReLU, no
dropout, no batch norm; logit = IM(e) + DNN(flatten(e)). Tuned Frappe_x1 setting: BARS
``ranking/ctr/DeepIM/DeepIM_frappe_x1`` (order 3, DNN 400-400-400, dropout 0.1, batch norm).

Departures: an empty ``hidden_units`` drops the DNN (FuxiCTR drops it only for ``None`` and
builds a plain linear layer for ``[]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.deepim import InteractionMachine
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class DeepIMConfig:
    embedding_dim: int = 10
    im_order: int = 2
    im_batch_norm: bool = False
    hidden_units: tuple[int, ...] = (64, 64, 64)  # empty: IM only
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    net_batch_norm: bool = False


@register("DeepIM", reference="Yu et al., Deep Interaction Machine, CIKM 2020")
class DeepIM(CTRModel):
    """e (B, F, D); logit = IM(e) + DNN(flatten(e)) -> (B,)."""

    config_class = DeepIMConfig
    test_params = {"im_order": 3, "hidden_units": (32, 16)}

    def __init__(self, schema: FeatureSchema, config: DeepIMConfig):
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        self.im = InteractionMachine(c.embedding_dim, c.im_order, c.im_batch_norm)
        self.dnn = (
            MLP(
                self.embedding.num_fields * c.embedding_dim,
                c.hidden_units,
                activation_name=c.hidden_activations,
                dropout=c.net_dropout,
                batch_norm=c.net_batch_norm,
                output_dim=1,
            )
            if c.hidden_units
            else None
        )

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)
        logit = self.im(e)
        if self.dnn is not None:
            logit = logit + self.dnn(e.flatten(1))
        return self.output(logit)

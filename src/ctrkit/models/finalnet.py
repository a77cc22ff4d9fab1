"""FinalNet: MLP blocks whose layers are factorized interactions, in a one- or two-block form.

Reference: Zhu et al., "FINAL: Factorized Interaction Layer for CTR Prediction", SIGIR 2023.
Structure and defaults from FuxiCTR ``model_zoo/FinalNet/src/FinalNet.py``: ``block_type`` "2B"
(two blocks of 64-64-64, no activation, batch norm, concat residual; logit = mean of the two
block logits; each block is also distilled towards the detached ensemble prediction), feature
gating off. "1B" keeps block 1 only. Tuned Frappe_x1 setting: BARS
``ranking/ctr/FinalNet/FinalNet_frappe_x1/FinalNet_2B_frappe_x1`` (run with the older FuxiCTR
``FINAL`` code: field gate on, block 1 [400, 400], block 2 [400], ReLU, dropout 0.1).

The distillation term of "2B" is FuxiCTR's ``add_loss``:
BCE(sigmoid(y1), p) + BCE(sigmoid(y2), p) with p = sigmoid(y) detached. It is returned as
``aux_loss`` in training mode only, so evaluation losses stay plain log loss.

Departures: the feature gate starts as the identity gate (weight 0, bias 1) as in the BARS-run
``FINAL`` code (the newer file defines but never calls that init); PyTorch default initialisation
elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as Fn
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.final import FieldGate, FinalBlock, ResidualType
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class FinalNetConfig:
    embedding_dim: int = 10
    block_type: Literal["1B", "2B"] = "2B"
    batch_norm: bool = True
    use_feature_gating: bool = False
    block1_hidden_units: tuple[int, ...] = (64, 64, 64)
    block1_hidden_activations: str | None = None
    block1_dropout: float = 0.0
    block2_hidden_units: tuple[int, ...] = (64, 64, 64)
    block2_hidden_activations: str | None = None
    block2_dropout: float = 0.0
    residual_type: ResidualType = "concat"


@register("FinalNet", reference="Zhu et al., FINAL: Factorized Interaction Layer, SIGIR 2023")
class FinalNet(CTRModel):
    """e (B, F, D); y1 = fc1(block1(flatten([gated] e))); 2B: y2 = fc2(block2(flatten(e))),
    logit = (y1 + y2) / 2. ``extras`` carries the block logits (B,) as block1_logit/block2_logit."""

    config_class = FinalNetConfig

    def __init__(self, schema: FeatureSchema, config: FinalNetConfig):
        super().__init__(schema, config)
        c = config
        if c.block_type not in ("1B", "2B"):
            raise ValueError(f"block_type must be '1B' or '2B', not '{c.block_type}'")
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        F = self.embedding.num_fields
        self.gate = FieldGate(F) if c.use_feature_gating else None
        self.block1 = FinalBlock(
            F * c.embedding_dim * (2 if c.use_feature_gating else 1),  # the gate doubles the fields
            c.block1_hidden_units,
            activation_name=c.block1_hidden_activations,
            dropout=c.block1_dropout,
            batch_norm=c.batch_norm,
            residual_type=c.residual_type,
        )
        self.fc1 = nn.Linear(self.block1.output_dim, 1)
        self.block2: FinalBlock | None = None
        self.fc2: nn.Linear | None = None
        if c.block_type == "2B":
            self.block2 = FinalBlock(
                F * c.embedding_dim,
                c.block2_hidden_units,
                activation_name=c.block2_hidden_activations,
                dropout=c.block2_dropout,
                batch_norm=c.batch_norm,
                residual_type=c.residual_type,
            )
            self.fc2 = nn.Linear(self.block2.output_dim, 1)

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        g = self.gate(e) if self.gate is not None else e  # (B, F or 2F, D)
        y1 = self.fc1(self.block1(g.flatten(1))).squeeze(-1)  # (B,)
        if self.block2 is None or self.fc2 is None:
            return ModelOutput({self.task: y1}, extras={"block1_logit": y1})
        y2 = self.fc2(self.block2(e.flatten(1))).squeeze(-1)
        y = 0.5 * (y1 + y2)
        aux = None
        if self.training:
            p = torch.sigmoid(y).detach()
            aux = Fn.binary_cross_entropy_with_logits(y1, p) + Fn.binary_cross_entropy_with_logits(y2, p)
        return ModelOutput({self.task: y}, aux_loss=aux, extras={"block1_logit": y1, "block2_logit": y2})

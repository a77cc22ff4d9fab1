"""Deep Crossing: stacked residual units over the concatenated embeddings.

Reference: Shan et al., "Deep Crossing: Web-Scale Modeling without Manually Crafted Combinatorial
Features", KDD 2016, Eq. (1): a residual unit X^O = ReLU(F(X^I, {W_0, W_1}, {b_0, b_1}) + X^I),
F = W_1 ReLU(W_0 X^I + b_0) + b_1, keeping the input size; a scoring layer on top. Layout and
defaults from FuxiCTR ``model_zoo/DeepCrossing/src/DeepCrossing.py``: residual_blocks 64-64-64
(the hidden size inside each unit), ReLU, no dropout, no batch norm, use_residual True,
embedding_dim 10; a unit is Linear -> act -> Linear, [+ input], [BatchNorm], act, [Dropout].
BARS has no Frappe_x1 run.

Departures: none. ``hidden_activations`` is one name for every unit (FuxiCTR also accepts a list).
Linear layers are Xavier-normal with zero biases (FuxiCTR's re-initialisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.dropout import FastDropout
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import activation
from ctrkit.schema import FeatureSchema


class ResidualUnit(nn.Module):
    """x: (B, d) -> act([BN](W_1 act(W_0 x + b_0) + b_1 [+ x])) [-> dropout]: (B, d).

    With zero weights and biases and ReLU this is ReLU(x): the identity on non-negative inputs
    (every unit after the first sees ReLU outputs).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        *,
        activation_name: str = "relu",
        dropout: float = 0.0,
        use_residual: bool = True,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.fc_in = nn.Linear(input_dim, hidden_dim)
        self.fc_out = nn.Linear(hidden_dim, input_dim)
        self.act = activation(activation_name)
        self.use_residual = use_residual
        self.norm = nn.BatchNorm1d(input_dim) if batch_norm else None
        self.dropout = FastDropout(dropout) if dropout > 0 else None
        for m in (self.fc_in, self.fc_out):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc_out(self.act(self.fc_in(x)))
        if self.use_residual:
            out = out + x
        if self.norm is not None:
            out = self.norm(out)
        out = self.act(out)
        if self.dropout is not None:
            out = self.dropout(out)
        return out


@dataclass(frozen=True)
class DeepCrossingConfig:
    embedding_dim: int = 10
    residual_blocks: tuple[int, ...] = (64, 64, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False
    use_residual: bool = True


@register("DeepCrossing", reference="Shan et al., Deep Crossing, KDD 2016")
class DeepCrossing(CTRModel):
    """x0 = flatten(e): (B, F*D) -> residual units (B, F*D) -> Linear -> (B,)."""

    config_class = DeepCrossingConfig

    def __init__(self, schema: FeatureSchema, config: DeepCrossingConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        d = self.embedding.num_fields * config.embedding_dim
        self.units = nn.Sequential(
            *[
                ResidualUnit(
                    d,
                    h,
                    activation_name=config.hidden_activations,
                    dropout=config.net_dropout,
                    use_residual=config.use_residual,
                    batch_norm=config.batch_norm,
                )
                for h in config.residual_blocks
            ]
        )
        self.fc = nn.Linear(d, 1)
        nn.init.xavier_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.units(self.embedding(batch).flatten(1))  # (B, F*D)
        return self.output(self.fc(x))

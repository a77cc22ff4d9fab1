"""EulerNet: feature interactions of learnable order through Euler's formula.

Reference: Tian et al., "EulerNet: Adaptive Feature Interaction Learning via Euler's Formula for
CTR Prediction", SIGIR 2023. Structure and defaults from FuxiCTR
``model_zoo/EulerNet/src/EulerNet.py`` (the authors' code): field embeddings e become complex
vectors mu_f (cos e + i sin e) with a learned per-field modulus mu_f (init 1); Euler interaction
layers of widths ``shape`` (default [3], in units of D-vectors); logit = w^T flatten(r) +
w^T flatten(p) + 2b (one linear layer shared by the real and imaginary parts). No dropout, no
layer norm by default. No BARS Frappe_x1 run exists; the Frappe_x1 config is FuxiCTR's own
``EulerNet_frappe`` setting (model_zoo/EulerNet/config/model_config.yaml, whose log reports test
AUC 0.984775, logloss 0.131309 on Frappe, not a BARS leaderboard entry).

Departures: the LayerNorms exist only with ``layer_norm=True`` (FuxiCTR always creates them and
leaves them unused otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.euler import EulerInteractionLayer
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class EulerNetConfig:
    embedding_dim: int = 10
    shape: tuple[int, ...] = (3,)  # output width of each Euler layer, in D-vectors
    net_ex_dropout: float = 0.0
    net_im_dropout: float = 0.0
    layer_norm: bool = False


@register("EulerNet", reference="Tian et al., EulerNet: Adaptive Feature Interaction Learning via Euler's Formula, SIGIR 2023")
class EulerNet(CTRModel):
    """e (B, F, D) -> (r, p) = mu (cos e, sin e) -> Euler layers -> (B, shape[-1], D) x2 -> (B,)."""

    config_class = EulerNetConfig

    def __init__(self, schema: FeatureSchema, config: EulerNetConfig):
        super().__init__(schema, config)
        c = config
        if not c.shape or min(c.shape) < 1:
            raise ValueError(f"EulerNet needs a non-empty shape of positive widths, got {c.shape}")
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        F = self.embedding.num_fields
        widths = [F, *c.shape]
        self.layers = nn.Sequential(
            *[
                EulerInteractionLayer(
                    n_in,
                    n_out,
                    c.embedding_dim,
                    layer_norm=c.layer_norm,
                    ex_dropout=c.net_ex_dropout,
                    im_dropout=c.net_im_dropout,
                )
                for n_in, n_out in zip(widths[:-1], widths[1:])
            ]
        )
        self.mu = nn.Parameter(torch.ones(1, F, 1))
        self.reg = nn.Linear(widths[-1] * c.embedding_dim, 1)
        nn.init.xavier_normal_(self.reg.weight)

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        r, p = self.layers((self.mu * torch.cos(e), self.mu * torch.sin(e)))
        return self.output(self.reg(r.flatten(1)) + self.reg(p.flatten(1)))

"""HFM and HFM+: holographic (circular convolution/correlation) pairwise interactions, plus LR.

Reference: Tay et al., "Holographic Factorization Machines for Recommendation", AAAI 2019
(HFM: logit = LR + h^T sum_{i<j} (e_i o e_j); HFM+: the pair vectors concatenated into a DNN).
Structure and defaults from FuxiCTR ``model_zoo/HFM/src/HFM.py``: circular convolution, DNN
64-64 with ReLU, no batch norm, no dropout. FuxiCTR has one class with ``use_dnn`` (default on);
here two registered names with their own default (HFM: ``use_dnn=False``, HFM+: ``True``).
Tuned Frappe_x1 settings: BARS ``ranking/ctr/HFM/HFM_frappe_x1`` (run HFM_frappe_x1_001_3755ddc7,
from its tuner config and results.csv; that folder has no README log) and
``ranking/ctr/HFM/HFM+_frappe_x1`` (circular correlation, DNN 400-400-400, batch norm,
dropout 0.4).

Departures: one activation name for all DNN layers (FuxiCTR accepts a per-layer list); the FFT
path uses ``rfft``/``irfft`` (same values as FuxiCTR's complex ``fft``/``ifft``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.hfm import HolographicInteraction, HolographicType
from ctrkit.nn.linear import LinearTerm
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class HFMConfig:
    embedding_dim: int = 10
    interaction_type: HolographicType = "circular_convolution"
    use_dnn: bool = False
    hidden_units: tuple[int, ...] = (64, 64)
    hidden_activations: str = "relu"
    batch_norm: bool = False
    net_dropout: float = 0.0


@dataclass(frozen=True)
class HFMPlusConfig(HFMConfig):
    use_dnn: bool = True


class _HFMBase(CTRModel):
    """e (B, F, D) -> pairs (B, P, D) with P = F(F-1)/2;
    HFM: logit = LR(batch) + h^T sum_p pairs_p;  HFM+: logit = LR(batch) + DNN(flatten(pairs))."""

    def __init__(self, schema: FeatureSchema, config: HFMConfig):
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        F = self.embedding.num_fields
        if F < 2:
            raise ValueError(f"{type(self).__name__} needs at least two fields, got {F}")
        self.interaction = HolographicInteraction(F, c.interaction_type)
        self.linear = LinearTerm(schema)
        self.dnn: MLP | None = None
        self.proj_h: nn.Linear | None = None
        if c.use_dnn:
            self.dnn = MLP(
                self.interaction.num_pairs * c.embedding_dim,
                c.hidden_units,
                activation_name=c.hidden_activations,
                dropout=c.net_dropout,
                batch_norm=c.batch_norm,
                output_dim=1,
            )
        else:
            self.proj_h = nn.Linear(c.embedding_dim, 1, bias=False)
            nn.init.xavier_normal_(self.proj_h.weight)

    def forward(self, batch: Batch) -> ModelOutput:
        pairs = self.interaction(self.embedding(batch))  # (B, P, D)
        if self.dnn is not None:
            h = self.dnn(pairs.flatten(1))
        else:
            assert self.proj_h is not None
            h = self.proj_h(pairs.sum(dim=1))
        return self.output(h.squeeze(-1) + self.linear(batch))


@register("HFM", reference="Tay et al., Holographic Factorization Machines for Recommendation, AAAI 2019")
class HFM(_HFMBase):
    """HFM: LR plus a learned projection of the summed holographic pair vectors."""

    config_class = HFMConfig


@register("HFM+", reference="Tay et al., Holographic Factorization Machines for Recommendation, AAAI 2019 (HFM+ with a DNN)")
class HFMPlus(_HFMBase):
    """HFM+: LR plus a DNN on the concatenated holographic pair vectors (64-64 by default)."""

    config_class = HFMPlusConfig
    test_params = {"hidden_units": (32,)}

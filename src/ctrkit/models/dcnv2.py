"""DCNv2: DCN-V2, a full-rank (or mixture of low-rank) cross network combined with an MLP.

Reference: Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale
Learning to Rank Systems", WWW 2021: the cross layer x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, the
stacked and parallel combinations of cross and deep networks, and the mixture of low-rank experts
(CrossNetMix). Layout from FuxiCTR ``model_zoo/DCNv2/src/DCNv2.py``, which adds two structures:
``crossnet_only`` and ``stacked_parallel`` (MLP on the cross output, concatenated with an MLP on
x_0). Defaults: FuxiCTR's constructor (parallel, 3 cross layers, no mixture, low_rank 32,
4 experts, embedding_dim 10); both MLPs 500-500-500 from FuxiCTR's ``DCNv2_default`` config
template, because the constructor's empty lists do not build for its own default ``parallel``.
Tuned Frappe_x1 settings: BARS ``ranking/ctr/DCNv2/DCNv2_frappe_x1``.

Departures: ``net_dropout`` and ``batch_norm`` apply to both MLPs (as in FuxiCTR); the expert
matrices of CrossNetMix are initialised per matrix (see :class:`ctrkit.nn.cross.CrossNetMix`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.cross import CrossNetMix, CrossNetV2
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema

Structure = Literal["crossnet_only", "stacked", "parallel", "stacked_parallel"]


@dataclass(frozen=True)
class DCNv2Config:
    embedding_dim: int = 10
    model_structure: Structure = "parallel"
    use_low_rank_mixture: bool = False
    low_rank: int = 32
    num_experts: int = 4
    stacked_dnn_hidden_units: tuple[int, ...] = (500, 500, 500)
    parallel_dnn_hidden_units: tuple[int, ...] = (500, 500, 500)
    dnn_activations: str = "relu"
    num_cross_layers: int = 3
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("DCNv2", reference="Wang et al., DCN V2, WWW 2021")
class DCNv2(CTRModel):
    """x0 = flatten(e): (B, d), d = F*D; cross = CrossNet(x0): (B, d). Then, by model_structure:

    crossnet_only:    fc(cross)                                 fc input d
    stacked:          fc(MLP_s(cross))                          fc input h_s
    parallel:         fc([cross, MLP_p(x0)])                    fc input d + h_p
    stacked_parallel: fc([MLP_s(cross), MLP_p(x0)])             fc input h_s + h_p
    """

    config_class = DCNv2Config

    def __init__(self, schema: FeatureSchema, config: DCNv2Config):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        d = self.embedding.num_fields * config.embedding_dim
        if config.model_structure not in get_args(Structure):
            raise ValueError(
                f"DCNv2 model_structure must be one of {get_args(Structure)}, got {config.model_structure!r}"
            )
        self.structure = config.model_structure
        if config.use_low_rank_mixture:
            self.crossnet: nn.Module = CrossNetMix(
                d, config.num_cross_layers, low_rank=config.low_rank, num_experts=config.num_experts
            )
        else:
            self.crossnet = CrossNetV2(d, config.num_cross_layers)
        uses_stacked = self.structure in ("stacked", "stacked_parallel")
        uses_parallel = self.structure in ("parallel", "stacked_parallel")
        # A structure that does not use an MLP gets None, so it has no parameters without gradients.
        self.stacked_dnn = self._mlp(config, d, "stacked") if uses_stacked else None
        self.parallel_dnn = self._mlp(config, d, "parallel") if uses_parallel else None
        cross_dim = self.stacked_dnn.output_dim if self.stacked_dnn is not None else d
        final_dim = cross_dim + (self.parallel_dnn.output_dim if self.parallel_dnn is not None else 0)
        self.fc = nn.Linear(final_dim, 1)

    def _mlp(self, config: DCNv2Config, d: int, role: Literal["stacked", "parallel"]) -> MLP:
        units = config.stacked_dnn_hidden_units if role == "stacked" else config.parallel_dnn_hidden_units
        if not units:
            raise ValueError(f"DCNv2 '{self.structure}' needs non-empty {role}_dnn_hidden_units")
        return MLP(
            d,
            units,
            activation_name=config.dnn_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        x0 = self.embedding(batch).flatten(1)  # (B, F*D)
        out = self.crossnet(x0)  # (B, F*D)
        if self.stacked_dnn is not None:
            out = self.stacked_dnn(out)
        if self.parallel_dnn is not None:
            out = torch.cat([out, self.parallel_dnn(x0)], dim=-1)
        return self.output(self.fc(out))

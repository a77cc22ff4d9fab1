"""MaskNet: feature-wise multiplication by instance-guided masks, serial or parallel.

Reference: Wang et al., "MaskNet: Introducing Feature-Wise Multiplication to CTR Ranking Models by
Instance-Guided Mask", DLP-KDD 2021: each MaskBlock multiplies a hidden vector elementwise by a
mask computed from the whole instance's embeddings, then a linear layer, layer norm and ReLU;
SerialMaskNet stacks blocks, ParallelMaskNet runs blocks side by side and puts an MLP on top.
Layout and defaults from FuxiCTR ``model_zoo/MaskNet/src/MaskNet.py`` (SerialMaskNet, 64-64-64,
reduction ratio 1, one parallel block of 64, layer norm on embeddings and in blocks). Tuned
Frappe_x1 settings: BARS ``ranking/ctr/MaskNet/MaskNet_frappe_x1`` (ParallelMaskNet, 3 blocks of
50, reduction ratio 2, MLP 400-400-400, dropout 0.1, no embedding layer norm).

Departures: none in structure; the per-field embedding LayerNorms are one batched op with per-field
gains and biases (same parameters and function as FuxiCTR's list of LayerNorms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.masknet import FieldLayerNorm, ParallelMaskNet, SerialMaskNet
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class MaskNetConfig:
    embedding_dim: int = 10
    model_type: Literal["SerialMaskNet", "ParallelMaskNet"] = "SerialMaskNet"
    dnn_hidden_units: tuple[int, ...] = (64, 64, 64)
    dnn_hidden_activations: str = "relu"
    parallel_num_blocks: int = 1
    parallel_block_dim: int = 64
    reduction_ratio: float = 1.0
    net_dropout: float = 0.0
    emb_layernorm: bool = True
    net_layernorm: bool = True


@register("MaskNet", reference="Wang et al., MaskNet, DLP-KDD 2021")
class MaskNet(CTRModel):
    """V_emb = flatten(e) (B, F*D); V_hidden = flatten(LN_field(e)) or V_emb.

    SerialMaskNet: blocks of widths dnn_hidden_units, then a linear logit layer.
    ParallelMaskNet: parallel_num_blocks blocks of width parallel_block_dim, concatenated
    (B, blocks*block_dim), then MLP(dnn_hidden_units) -> (B,).
    """

    config_class = MaskNetConfig
    test_params = {"dnn_hidden_units": (32, 32)}

    def __init__(self, schema: FeatureSchema, config: MaskNetConfig):
        super().__init__(schema, config)
        D = config.embedding_dim
        self.embedding = FeatureEmbedding(schema, D)
        F = self.embedding.num_fields
        self.emb_norm = FieldLayerNorm(F, D) if config.emb_layernorm else None
        common = dict(
            activation_name=config.dnn_hidden_activations,
            reduction_ratio=config.reduction_ratio,
            dropout=config.net_dropout,
            layer_norm=config.net_layernorm,
        )
        if config.model_type == "SerialMaskNet":
            self.mask_net: nn.Module = SerialMaskNet(F * D, config.dnn_hidden_units, **common)
            self.fc: nn.Linear | None = nn.Linear(self.mask_net.output_dim, 1)
            nn.init.xavier_normal_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)
        elif config.model_type == "ParallelMaskNet":
            self.mask_net = ParallelMaskNet(
                F * D,
                num_blocks=config.parallel_num_blocks,
                block_dim=config.parallel_block_dim,
                hidden_units=config.dnn_hidden_units,
                output_dim=1,
                **common,
            )
            self.fc = None
        else:
            raise ValueError(f"model_type must be SerialMaskNet or ParallelMaskNet, got {config.model_type!r}")

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        v_hidden = self.emb_norm(e) if self.emb_norm is not None else e
        out = self.mask_net(e.flatten(1), v_hidden.flatten(1))
        if self.fc is not None:
            out = self.fc(out)
        return self.output(out)

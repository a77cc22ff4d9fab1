"""EDCN: Enhanced Deep & Cross Network, a DCN whose cross and deep towers share information after
every layer.

Reference: Chen et al., "Enhancing Explicit and Implicit Feature Interactions via Information
Sharing for Parallel Deep CTR Models", CIKM 2021 (DLP-KDD 2021): per layer l, a regulation module
gives each tower its own field-gated copy of the previous bridge output, the cross layer and a
dense layer (width F*D) run on them, and a bridge module fuses their outputs; the logit layer reads
[cross_L, deep_L, bridge_L]. Layout and defaults from FuxiCTR ``model_zoo/EDCN/src/EDCN.py``
(3 layers, hadamard bridge, temperature 1, ``batch_norm`` = BatchNorm in the regulation module).
``use_regulation_module`` is FuxiCTR v1.2's switch (BARS ran with it on); off, both towers read
the bridge output unchanged. Tuned Frappe_x1 settings: BARS ``ranking/ctr/EDCN/EDCN_frappe_x1``.

Departures: the attention_pooling bridge uses a separate attention network per tower (the paper;
FuxiCTR reuses the first). Cross layers are DCN's (one :class:`ctrkit.nn.cross.CrossNet` holds
their weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.cross import CrossNet
from ctrkit.nn.edcn import BridgeModule, BridgeType, RegulationModule, cross_layer
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class EDCNConfig:
    embedding_dim: int = 10
    num_cross_layers: int = 3
    hidden_activations: str = "relu"
    bridge_type: BridgeType = "hadamard_product"
    use_regulation_module: bool = True
    temperature: float = 1.0
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("EDCN", reference="Chen et al., EDCN, CIKM 2021 (DLP-KDD 2021)")
class EDCN(CTRModel):
    """x = flatten(e): (B, d), d = F*D. For l = 1..L:
    (c, h) = regulation_l(bridge_{l-1}) (bridge_0 = x); c_0 = first c;
    cross_l = c_0 * (c . w_l) + b_l + c; deep_l = act(W_l h + b_l); bridge_l = bridge(cross_l, deep_l).
    logit = fc([cross_L, deep_L, bridge_L]) (B, 3d) -> (B,).
    """

    config_class = EDCNConfig
    test_params = {"num_cross_layers": 2}

    def __init__(self, schema: FeatureSchema, config: EDCNConfig):
        super().__init__(schema, config)
        D = config.embedding_dim
        self.embedding = FeatureEmbedding(schema, D)
        F = self.embedding.num_fields
        d = F * D
        L = config.num_cross_layers
        self.crossnet = CrossNet(d, L)  # holds w_l, b_l of every cross layer
        self.dense_layers = nn.ModuleList(
            MLP(d, (d,), activation_name=config.hidden_activations, dropout=config.net_dropout) for _ in range(L)
        )
        self.bridges = nn.ModuleList(BridgeModule(d, config.bridge_type) for _ in range(L))
        self.regulations = (
            nn.ModuleList(
                RegulationModule(F, D, temperature=config.temperature, batch_norm=config.batch_norm) for _ in range(L)
            )
            if config.use_regulation_module
            else None
        )
        self.fc = nn.Linear(3 * d, 1)
        nn.init.xavier_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def _regulate(self, l: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.regulations is None:
            return x, x
        return self.regulations[l](x)

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.embedding(batch).flatten(1)  # (B, d)
        cross, deep = self._regulate(0, x)
        cross0 = cross
        bridge = x
        L = len(self.bridges)
        for l in range(L):
            cross = cross_layer(self.crossnet, l, cross0, cross)
            deep = self.dense_layers[l](deep)
            bridge = self.bridges[l](cross, deep)
            if l + 1 < L:
                cross, deep = self._regulate(l + 1, bridge)
        return self.output(self.fc(torch.cat([cross, deep, bridge], dim=-1)))

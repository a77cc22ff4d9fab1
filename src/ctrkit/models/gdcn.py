"""GDCN: gated cross network, stacked with (GDCN-S) or parallel to (GDCN-P) a DNN.

Reference: Wang et al., "Towards Deeper, Lighter and Interpretable Cross Network for CTR
Prediction", CIKM 2023. Structure and defaults from FuxiCTR ``model_zoo/GDCN/src/GDCN.py``, which
registers two classes: ``GDCN`` (stacked: DNN on the cross output, DNN output 1) and ``GDCNP``
(parallel: concat[cross output, DNN last hidden] -> linear). Here one model with
``model_structure`` ("stacked", the default as FuxiCTR's ``GDCN``, or "parallel"). Defaults as
the FuxiCTR constructor: embedding_dim 10, 3 cross layers, no dropout, no batch norm. No BARS
run exists for GDCN; the Frappe_x1 config takes its model parameters from FuxiCTR's
``GDCN_default`` template (untuned).

Departures: FuxiCTR's constructor default ``dnn_hidden_units=[]`` crashes its own ``forward``
(the DNN is None); here an empty DNN means the cross-network output feeds a linear logit
directly. ``model_structure`` replaces the separate ``GDCNP`` class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.gdcn import GatedCrossNet
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class GDCNConfig:
    embedding_dim: int = 10
    model_structure: Literal["stacked", "parallel"] = "stacked"
    dnn_hidden_units: tuple[int, ...] = ()
    dnn_activations: str = "relu"
    num_cross_layers: int = 3
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("GDCN", reference="Wang et al., Towards Deeper, Lighter and Interpretable Cross Network for CTR Prediction, CIKM 2023")
class GDCN(CTRModel):
    """x_0 = flatten(e) (B, F*D); c = GatedCrossNet(x_0) (B, F*D).

    stacked:  logit = DNN(c) (hidden units then output 1; a linear layer when there are none)
    parallel: logit = w^T [c, DNN_hidden(x_0)] + b
    """

    config_class = GDCNConfig
    test_params = {"dnn_hidden_units": (32, 16), "num_cross_layers": 2}

    def __init__(self, schema: FeatureSchema, config: GDCNConfig):
        super().__init__(schema, config)
        c = config
        if c.model_structure not in ("stacked", "parallel"):
            raise ValueError(f"model_structure must be 'stacked' or 'parallel', not '{c.model_structure}'")
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        d = self.embedding.num_fields * c.embedding_dim
        self.cross = GatedCrossNet(d, c.num_cross_layers)
        mlp_args = dict(activation_name=c.dnn_activations, dropout=c.net_dropout, batch_norm=c.batch_norm)
        self.parallel = c.model_structure == "parallel"
        if self.parallel:
            self.dnn = MLP(d, c.dnn_hidden_units, **mlp_args) if c.dnn_hidden_units else None
            self.fc = nn.Linear(d + (self.dnn.output_dim if self.dnn is not None else 0), 1)
        else:
            self.dnn = MLP(d, c.dnn_hidden_units, output_dim=1, **mlp_args)
            self.fc = None

    def forward(self, batch: Batch) -> ModelOutput:
        x0 = self.embedding(batch).flatten(1)  # (B, F*D)
        c = self.cross(x0)
        if not self.parallel:
            return self.output(self.dnn(c))
        h = torch.cat([c, self.dnn(x0)], dim=1) if self.dnn is not None else c
        return self.output(self.fc(h))

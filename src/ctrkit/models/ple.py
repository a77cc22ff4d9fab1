"""PLE: progressive layered extraction (stacked CGC layers with shared and task-specific experts).

Reference: Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL)
Model for Personalized Recommendations", RecSys 2020, Sec. 4 (CGC, Eq. 1-3; extraction networks,
Eq. 4-5). Configuration names follow FuxiCTR's ``PLE`` (num_layers, num_shared_experts,
num_specific_experts, expert/gate/tower hidden units). See :class:`ctrkit.nn.experts.CGCLayer`.

Shapes: embeddings (B, F, D) -> x (B, F*D), fed as the input of every task and of the shared
branch; each CGC layer maps T+1 inputs (B, d) to T+1 outputs (B, H) (T on the last layer);
tower_k -> logit (B,). ``extras["gate_<task>"]`` holds the last layer's task gate
(B, num_specific_experts + num_shared_experts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.experts import CGCLayer
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class PLEConfig:
    embedding_dim: int = 10
    num_layers: int = 1
    num_shared_experts: int = 1
    num_specific_experts: int = 1
    expert_hidden_units: tuple[int, ...] = (512, 256, 128)
    gate_hidden_units: tuple[int, ...] = (128, 64)
    tower_hidden_units: tuple[int, ...] = (128, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("PLE", kind="multitask", reference="Tang et al., Progressive Layered Extraction, RecSys 2020")
class PLE(CTRModel):
    config_class = PLEConfig
    multi_task = True
    test_params: ClassVar[dict[str, Any]] = {
        "embedding_dim": 8,
        "num_layers": 2,
        "num_shared_experts": 2,
        "num_specific_experts": 1,
        "expert_hidden_units": (32,),
        "gate_hidden_units": (),
        "tower_hidden_units": (16,),
    }

    def __init__(self, schema: FeatureSchema, config: PLEConfig):
        super().__init__(schema, config)
        if config.num_layers < 1:
            raise ValueError(f"PLE needs num_layers >= 1, got {config.num_layers}")
        kw = dict(activation_name=config.hidden_activations, dropout=config.net_dropout, batch_norm=config.batch_norm)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        d = self.embedding.num_fields * config.embedding_dim
        T = len(self.task_names)
        layers = []
        for i in range(config.num_layers):
            layer = CGCLayer(
                d,
                T,
                config.num_shared_experts,
                config.num_specific_experts,
                config.expert_hidden_units,
                config.gate_hidden_units,
                last=i == config.num_layers - 1,
                **kw,
            )
            layers.append(layer)
            d = layer.output_dim
        self.cgc = nn.ModuleList(layers)
        self.towers = nn.ModuleList(MLP(d, config.tower_hidden_units, output_dim=1, **kw) for _ in self.task_names)

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.embedding(batch).flatten(1)  # (B, F*D)
        h = [x] * (len(self.task_names) + 1)
        gates: list = []
        for layer in self.cgc:
            h, gates = layer(h)
        logits = {t: tower(h[k]).reshape(-1) for k, (t, tower) in enumerate(zip(self.task_names, self.towers))}
        extras = {f"gate_{t}": gates[k] for k, t in enumerate(self.task_names)}
        return ModelOutput(logits, extras=extras)

"""MMoE: multi-gate mixture of experts.

Reference: Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts", KDD 2018, Eq. 5-7: ``y_k = h_k(sum_i g_k(x)_i f_i(x))`` with
``g_k(x) = softmax(W_gk x)``. Layout and defaults follow FuxiCTR's ``MMoE`` (num_experts 4;
expert, gate and tower MLPs; the gate may have hidden layers, ``gate_hidden_units=()`` is the
paper's linear gate).

Shapes: embeddings (B, F, D) -> x (B, F*D); experts (B, E, H); gate_k (B, E) (softmax, rows sum
to 1); task input (B, H); tower_k -> logit (B,). ``extras["gate_<task>"]`` holds gate_k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.experts import ExpertGroup, SoftmaxGate, mix
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class MMoEConfig:
    embedding_dim: int = 10
    num_experts: int = 4
    expert_hidden_units: tuple[int, ...] = (512, 256, 128)
    gate_hidden_units: tuple[int, ...] = (128, 64)
    tower_hidden_units: tuple[int, ...] = (128, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("MMoE", kind="multitask", reference="Ma et al., Multi-gate Mixture-of-Experts, KDD 2018")
class MMoE(CTRModel):
    config_class = MMoEConfig
    multi_task = True
    test_params: ClassVar[dict[str, Any]] = {
        "embedding_dim": 8,
        "num_experts": 3,
        "expert_hidden_units": (32,),
        "gate_hidden_units": (16,),
        "tower_hidden_units": (16,),
    }

    def __init__(self, schema: FeatureSchema, config: MMoEConfig):
        super().__init__(schema, config)
        kw = dict(activation_name=config.hidden_activations, dropout=config.net_dropout, batch_norm=config.batch_norm)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        d_in = self.embedding.num_fields * config.embedding_dim
        self.experts = ExpertGroup(d_in, config.num_experts, config.expert_hidden_units, **kw)
        self.gates = nn.ModuleList(
            SoftmaxGate(d_in, config.num_experts, config.gate_hidden_units, **kw) for _ in self.task_names
        )
        self.towers = nn.ModuleList(
            MLP(self.experts.output_dim, config.tower_hidden_units, output_dim=1, **kw) for _ in self.task_names
        )

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.embedding(batch).flatten(1)  # (B, F*D)
        experts = self.experts(x)  # (B, E, H)
        logits, extras = {}, {}
        for t, gate, tower in zip(self.task_names, self.gates, self.towers):
            g = gate(x)  # (B, E)
            logits[t] = tower(mix(experts, g)).reshape(-1)
            extras[f"gate_{t}"] = g
        return ModelOutput(logits, extras=extras)

"""SharedBottom: one bottom MLP shared by all tasks, one tower MLP per task.

Reference: Caruana, "Multitask Learning", Machine Learning 1997 (hard parameter sharing); the
multi-task baseline of Ma et al. (MMoE, KDD 2018) and FuxiCTR's ``ShareBottom``
(``model_zoo/multitask/ShareBottom``: bottom_hidden_units, tower_hidden_units).

Shapes: field embeddings (B, F, D) -> flatten (B, F*D) -> bottom MLP (B, H_b) -> tower_k
(B, 1) -> logit per schema task (B,). Tasks come from the schema (any number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class SharedBottomConfig:
    embedding_dim: int = 10
    bottom_hidden_units: tuple[int, ...] = (512, 256, 128)
    tower_hidden_units: tuple[int, ...] = (128, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("SharedBottom", kind="multitask", reference="Caruana, Multitask Learning, 1997 (hard sharing; FuxiCTR ShareBottom)")
class SharedBottom(CTRModel):
    config_class = SharedBottomConfig
    multi_task = True
    test_params: ClassVar[dict[str, Any]] = {"embedding_dim": 8, "bottom_hidden_units": (32,), "tower_hidden_units": (16,)}

    def __init__(self, schema: FeatureSchema, config: SharedBottomConfig):
        super().__init__(schema, config)
        if not config.bottom_hidden_units:
            raise ValueError("SharedBottom needs at least one bottom layer")
        kw = dict(activation_name=config.hidden_activations, dropout=config.net_dropout, batch_norm=config.batch_norm)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.bottom = MLP(self.embedding.num_fields * config.embedding_dim, config.bottom_hidden_units, **kw)
        self.towers = nn.ModuleList(
            MLP(self.bottom.output_dim, config.tower_hidden_units, output_dim=1, **kw) for _ in self.task_names
        )

    def forward(self, batch: Batch) -> ModelOutput:
        h = self.bottom(self.embedding(batch).flatten(1))  # (B, H_b)
        return ModelOutput({t: tower(h).reshape(-1) for t, tower in zip(self.task_names, self.towers)})

"""DSSM: a two-tower model; a user tower and an item tower over disjoint field groups, scored by
the inner product of the towers' outputs.

Reference: Huang et al., "Learning Deep Structured Semantic Models for Web Search using
Clickthrough Data", CIKM 2013 (two towers, similarity of their outputs), in the CTR form of
FuxiCTR ``model_zoo/DSSM/src/DSSM.py`` (logit = <user_tower(e_user), item_tower(e_item)>; each
tower is an MLP whose last layer is linear). FuxiCTR assigns fields to towers by a ``source: user``
/ ``source: item`` key in the dataset config; here the model config names them (``user_fields``,
``item_fields``). BARS ``ranking/ctr/DSSM/DSSM_frappe_x1`` puts user, daytime, weekday, isweekend,
homework, weather, country, city in the user tower and item, cost in the item tower. Defaults:
FuxiCTR's constructor (both towers 64-64-64, ReLU, no dropout, no batch norm).

Departures: the paper's cosine similarity and softmax over negatives are replaced by a plain inner
product trained with the CTR loss (as FuxiCTR does); an empty ``item_fields`` means "every field
not in user_fields".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class DSSMConfig:
    embedding_dim: int = 10
    user_fields: tuple[str, ...] = ()
    item_fields: tuple[str, ...] = ()
    user_tower_units: tuple[int, ...] = (64, 64, 64)
    item_tower_units: tuple[int, ...] = (64, 64, 64)
    user_tower_activations: str = "relu"
    item_tower_activations: str = "relu"
    user_tower_dropout: float = 0.0
    item_tower_dropout: float = 0.0
    batch_norm: bool = False


def embedding_field_names(schema: FeatureSchema) -> list[str]:
    """Field names in :class:`FeatureEmbedding` order (categorical, numeric, sequences)."""
    return [f.name for f in schema.categorical] + [f.name for f in schema.numeric] + [f.name for f in schema.sequences]


@register("DSSM", reference="Huang et al., DSSM, CIKM 2013 (two-tower CTR form of FuxiCTR/BARS)")
class DSSM(CTRModel):
    """e: (B, F, D); user = MLP_u(flatten(e[:, user_fields])) (B, U); item = MLP_i(...) (B, U);
    logit = sum(user * item). Both towers must end in the same width."""

    config_class = DSSMConfig
    test_params = {
        "user_fields": ("c0", "c2", "n0"),
        "item_fields": ("c1", "c3", "n1"),
        "user_tower_units": (32, 16),
        "item_tower_units": (32, 16),
    }

    def __init__(self, schema: FeatureSchema, config: DSSMConfig):
        super().__init__(schema, config)
        names = embedding_field_names(schema)
        if not config.user_fields:
            raise ValueError(f"DSSM needs user_fields: the fields of the user tower (fields: {names})")
        for n in (*config.user_fields, *config.item_fields):
            if n not in names:
                raise ValueError(f"DSSM field '{n}' is not a feature of the schema (fields: {names})")
        item_fields = config.item_fields or tuple(n for n in names if n not in config.user_fields)
        overlap = set(config.user_fields) & set(item_fields)
        if overlap:
            raise ValueError(f"DSSM fields {sorted(overlap)} are in both towers")
        if not item_fields:
            raise ValueError("DSSM's item tower has no fields")
        if not config.user_tower_units or not config.item_tower_units:
            raise ValueError("DSSM needs non-empty user_tower_units and item_tower_units")
        if config.user_tower_units[-1] != config.item_tower_units[-1]:
            raise ValueError(
                f"the towers must end in the same width for the inner product, got "
                f"{config.user_tower_units[-1]} and {config.item_tower_units[-1]}"
            )
        D = config.embedding_dim
        self.embedding = FeatureEmbedding(schema, D)
        self.register_buffer("user_idx", torch.tensor([names.index(n) for n in config.user_fields]), persistent=False)
        self.register_buffer("item_idx", torch.tensor([names.index(n) for n in item_fields]), persistent=False)
        self.user_tower = MLP(
            D * len(config.user_fields),
            config.user_tower_units[:-1],
            activation_name=config.user_tower_activations,
            dropout=config.user_tower_dropout,
            batch_norm=config.batch_norm,
            output_dim=config.user_tower_units[-1],
        )
        self.item_tower = MLP(
            D * len(item_fields),
            config.item_tower_units[:-1],
            activation_name=config.item_tower_activations,
            dropout=config.item_tower_dropout,
            batch_norm=config.batch_norm,
            output_dim=config.item_tower_units[-1],
        )

    def towers(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(user vector, item vector), each (B, U)."""
        e = self.embedding(batch)  # (B, F, D)
        user = self.user_tower(e[:, self.user_idx].flatten(1))
        item = self.item_tower(e[:, self.item_idx].flatten(1))
        return user, item

    def forward(self, batch: Batch) -> ModelOutput:
        user, item = self.towers(batch)
        return self.output((user * item).sum(dim=-1))

"""DLRM: Deep Learning Recommendation Model.

Reference: Naumov et al., "Deep Learning Recommendation Model for Personalization and
Recommendation Systems", arXiv:1906.00091, 2019, Section 2-3: a bottom MLP maps the dense
features to one embedding-sized vector, which joins the categorical embeddings; the interaction
layer takes the dot product of every pair of these vectors ("dot") and concatenates them with the
dense vector; a top MLP gives the logit. Layout and defaults from FuxiCTR
``model_zoo/DLRM/src/DLRM.py`` (bottom and top MLPs 64-64-64, ReLU, ``interaction_op: dot``; the
bottom MLP ends in a linear layer to embedding_dim followed by the activation; ``cat`` flattens
the vectors instead of the dot products). Tuned Frappe_x1 settings: BARS
``ranking/ctr/DLRM/DLRM_frappe_x1`` (``cat``, top 400-400-400, batch norm, dropout 0.4; Frappe
has no dense feature, so no bottom MLP).

Departures: sequence fields join the categorical embeddings mean pooled (the paper has none);
``batch_norm`` applies to both MLPs (as FuxiCTR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FusedEmbedding, masked_mean
from ctrkit.nn.interactions import InnerProductPairs
from ctrkit.nn.mlp import MLP, activation
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class DLRMConfig:
    embedding_dim: int = 10
    top_mlp_units: tuple[int, ...] = (64, 64, 64)
    bottom_mlp_units: tuple[int, ...] = (64, 64, 64)
    top_mlp_activations: str = "relu"
    bottom_mlp_activations: str = "relu"
    top_mlp_dropout: float = 0.0
    bottom_mlp_dropout: float = 0.0
    interaction_op: Literal["dot", "cat"] = "dot"
    batch_norm: bool = False


@register("DLRM", reference="Naumov et al., DLRM, arXiv 2019")
class DLRM(CTRModel):
    """Vectors V: (B, n, D) = [categorical embeddings (B, C, D), sequences (B, S, D),
    bottom_mlp(dense) (B, 1, D) when there are numeric fields].

    dot: top_mlp([V_i . V_j for i < j] (B, n(n-1)/2), bottom_mlp(dense) (B, D)) -> (B,)
    cat: top_mlp(flatten(V)) (B, n*D) -> (B,)
    """

    config_class = DLRMConfig
    test_params = {"top_mlp_units": (32, 32), "bottom_mlp_units": (16,)}

    def __init__(self, schema: FeatureSchema, config: DLRMConfig):
        super().__init__(schema, config)
        if config.interaction_op not in ("dot", "cat"):
            raise ValueError(f"interaction_op must be 'dot' or 'cat', got {config.interaction_op!r}")
        D = config.embedding_dim
        self.num_categorical = len(schema.categorical)
        self.sequence_names = [f.name for f in schema.sequences]
        self.num_numeric = len(schema.numeric)
        # Categorical and sequence fields only: numeric fields go through the bottom MLP.
        self.embedding = FusedEmbedding(schema, D) if self.num_categorical or self.sequence_names else None
        self.bottom_mlp: nn.Module | None = None
        if self.num_numeric:
            self.bottom_mlp = nn.Sequential(
                MLP(
                    self.num_numeric,
                    config.bottom_mlp_units,
                    activation_name=config.bottom_mlp_activations,
                    dropout=config.bottom_mlp_dropout,
                    batch_norm=config.batch_norm,
                    output_dim=D,
                ),
                activation(config.bottom_mlp_activations),
            )
        n = self.num_categorical + len(self.sequence_names) + int(self.num_numeric > 0)
        if n < 1:
            raise ValueError("DLRM needs at least one field")
        self.op = config.interaction_op
        if self.op == "dot":
            if n < 2:
                raise ValueError("DLRM's dot interaction needs at least two vectors")
            self.interact: nn.Module | None = InnerProductPairs(n)
            top_in = n * (n - 1) // 2 + D * int(self.num_numeric > 0)
        else:
            self.interact = None
            top_in = n * D
        self.top_mlp = MLP(
            top_in,
            config.top_mlp_units,
            activation_name=config.top_mlp_activations,
            dropout=config.top_mlp_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def vectors(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(V (B, n, D), bottom-MLP output (B, D) or None)."""
        parts = []
        if self.num_categorical:
            assert self.embedding is not None
            parts.append(self.embedding(batch.ids))
        for name in self.sequence_names:
            assert self.embedding is not None
            seq = batch.sequences[name]
            parts.append(masked_mean(self.embedding(seq.values), seq.mask()).unsqueeze(1))
        dense = None
        if self.bottom_mlp is not None:
            dense = self.bottom_mlp(batch.dense)
            parts.append(dense.unsqueeze(1))
        return torch.cat(parts, dim=1), dense

    def forward(self, batch: Batch) -> ModelOutput:
        v, dense = self.vectors(batch)
        if self.interact is not None:
            z = self.interact(v)  # (B, n(n-1)/2)
            if dense is not None:
                z = torch.cat([z, dense], dim=-1)
        else:
            z = v.flatten(1)
        return self.output(self.top_mlp(z))

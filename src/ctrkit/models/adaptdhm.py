"""AdaptDHM: adaptive distribution hierarchical model for multi-domain CTR prediction.

Reference: Li et al., "AdaptDHM: Adaptive Distribution Hierarchical Model for Multi-Domain CTR
Prediction", arXiv:2211.12105, 2022. Instead of one network per (pre-defined) domain, a
distribution adaptation module routes every sample by dynamic routing to one of K learned
clusters (soft coefficients), each cluster has its own tower, and the towers' outputs are combined
by the routing coefficients; everything is trained end to end.

Shapes: field embeddings (B, F, D) ++ domain-indicator embedding (B, D) -> x (B, (F+1)*D) ->
shared bottom MLP h (B, H) -> routing coefficients c (B, K) (:class:`ctrkit.nn.domain.DynamicRouting`,
rows sum to 1) -> K towers on h -> logits (B, K) -> ``logit = sum_k c_k * logit_k`` (B,).
``extras["routing"]`` holds c.

Departures (implemented from the paper's abstract-level description; its exact equations were
not available): the routing update is the capsule routing-by-agreement described in
:class:`~ctrkit.nn.domain.DynamicRouting`, per sample; the towers are combined on the logit
scale; the domain indicator enters as an input embedding (the clustering itself needs no domain
prior, as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.models.star import domain_count
from ctrkit.nn.domain import DynamicRouting
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class AdaptDHMConfig:
    embedding_dim: int = 10
    bottom_hidden_units: tuple[int, ...] = (256, 128)
    tower_hidden_units: tuple[int, ...] = (64,)
    num_clusters: int = 4
    capsule_dim: int = 16
    routing_iterations: int = 3
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("AdaptDHM", kind="multidomain", reference="Li et al., AdaptDHM, arXiv:2211.12105 (2022)")
class AdaptDHM(CTRModel):
    config_class = AdaptDHMConfig
    test_params: ClassVar[dict[str, Any]] = {
        "embedding_dim": 8,
        "bottom_hidden_units": (32,),
        "tower_hidden_units": (16,),
        "num_clusters": 3,
        "capsule_dim": 8,
    }

    def __init__(self, schema: FeatureSchema, config: AdaptDHMConfig):
        super().__init__(schema, config)
        if not config.bottom_hidden_units:
            raise ValueError("AdaptDHM needs at least one bottom layer")
        self.num_domains = domain_count(schema, "AdaptDHM")
        kw = dict(activation_name=config.hidden_activations, dropout=config.net_dropout, batch_norm=config.batch_norm)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.domain_embedding = nn.Embedding(self.num_domains, config.embedding_dim)
        nn.init.normal_(self.domain_embedding.weight, std=1e-4)
        d = (self.embedding.num_fields + 1) * config.embedding_dim
        self.bottom = MLP(d, config.bottom_hidden_units, **kw)
        self.routing = DynamicRouting(
            self.bottom.output_dim, config.num_clusters, config.capsule_dim, config.routing_iterations
        )
        self.towers = nn.ModuleList(
            MLP(self.bottom.output_dim, config.tower_hidden_units, output_dim=1, **kw)
            for _ in range(config.num_clusters)
        )

    def forward(self, batch: Batch) -> ModelOutput:
        if batch.domain is None:
            raise ValueError("AdaptDHM needs Batch.domain")
        e = self.embedding(batch)  # (B, F, D)
        x = torch.cat([e, self.domain_embedding(batch.domain.long()).unsqueeze(1)], dim=1).flatten(1)
        h = self.bottom(x)  # (B, H)
        c = self.routing(h)  # (B, K)
        logits = torch.cat([t(h) for t in self.towers], dim=1)  # (B, K)
        return ModelOutput({self.task: (c * logits).sum(1)}, extras={"routing": c})

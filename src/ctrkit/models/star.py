"""STAR: star topology adaptive recommender for multi-domain CTR prediction.

Reference: Sheng et al., "One Model to Serve All: Star Topology Adaptive Recommender for
Multi-Domain CTR Prediction", CIKM 2021, Sec. 4: partitioned normalization (Eq. 3-4), the star
topology FCN whose layer for domain p has weights ``W ⊙ W_p`` and bias ``b + b_p`` (Eq. 5-6), and
an auxiliary network fed with the domain indicator and the features whose logit is added to the
FCN's (Eq. 7: ``logit = s_m + s_a``).

Shapes: field embeddings (B, F, D) -> x (B, F*D) -> PartitionedNorm (B, F*D) -> StarFCN
(B, 1) = s_m; domain embedding (B, D) ++ x -> auxiliary MLP (B, 1) = s_a; logit = s_m + s_a (B,).

Departures: mini-batches mix domains (the paper draws each batch from one domain), so
partitioned normalization uses per-domain statistics *within* the batch (see
:class:`ctrkit.nn.domain.PartitionedNorm`); domain weights start at 1 and domain biases at 0,
so the untrained STAR FCN is the shared FCN; the domain weights are stored as scaled offsets
``W_p = 1 + delta_p / sigma`` (same function, but under Adam they learn as fast as the shared
weights they multiply instead of ~1/sigma times slower, see :class:`ctrkit.nn.domain.StarLinear`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.domain import PartitionedNorm, StarFCN
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


def domain_count(schema: FeatureSchema, model: str) -> int:
    if not schema.domain or not schema.num_domains:
        raise ValueError(f"{model} is a multi-domain model: the schema needs a fitted 'domain' column (num_domains)")
    return int(schema.num_domains)


@dataclass(frozen=True)
class STARConfig:
    embedding_dim: int = 10
    hidden_units: tuple[int, ...] = (256, 128, 64)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    partitioned_norm: bool = True
    aux_hidden_units: tuple[int, ...] = (64,)  # the paper's auxiliary net is a 2-layer FCN
    domain_embedding_dim: int | None = None  # default: embedding_dim


@register("STAR", kind="multidomain", reference="Sheng et al., Star Topology Adaptive Recommender, CIKM 2021")
class STAR(CTRModel):
    config_class = STARConfig
    test_params: ClassVar[dict[str, Any]] = {"embedding_dim": 8, "hidden_units": (32, 16), "aux_hidden_units": (8,)}

    def __init__(self, schema: FeatureSchema, config: STARConfig):
        super().__init__(schema, config)
        self.num_domains = domain_count(schema, "STAR")
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        d = self.embedding.num_fields * config.embedding_dim
        self.norm = PartitionedNorm(d, self.num_domains) if config.partitioned_norm else None
        self.fcn = StarFCN(
            d,
            config.hidden_units,
            self.num_domains,
            output_dim=1,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
        )
        dd = config.domain_embedding_dim or config.embedding_dim
        self.domain_embedding = nn.Embedding(self.num_domains, dd)
        nn.init.normal_(self.domain_embedding.weight, std=1e-4)
        self.aux = MLP(d + dd, config.aux_hidden_units, activation_name=config.hidden_activations, output_dim=1)

    def forward(self, batch: Batch) -> ModelOutput:
        if batch.domain is None:
            raise ValueError("STAR needs Batch.domain")
        dom = batch.domain.long()
        x = self.embedding(batch).flatten(1)  # (B, F*D)
        z = self.norm(x, dom) if self.norm is not None else x
        s_m = self.fcn(z, dom)  # (B, 1)
        s_a = self.aux(torch.cat([self.domain_embedding(dom), x], dim=1))  # (B, 1)
        return self.output(s_m + s_a)

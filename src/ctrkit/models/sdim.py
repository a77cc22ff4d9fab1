"""SDIM: Sampling-based Deep Interest Modeling for long behaviour sequences.

Reference: Cao et al., "Sampling Is All You Need on Modeling Long-Term User Behaviors for CTR
Prediction", CIKM 2022; cross-checked with FuxiCTR ``model_zoo/SDIM/src/SDIM.py``
(``lsh_attentioin``: SimHash buckets with ``num_hashes`` x ``hash_bits``, colliding behaviours
pooled per hash and averaged over hashes).

Structure, with D the behaviour width (E x number of paired sequence fields)::

    R ~ N(0, 1)  (D, m, tau), fixed                                  m = num_hashes, tau = hash_bits
    c_target = bucket(sign(e_target R))  (B, m);  c_i = bucket(sign(e_i R))  (B, L, m)
    per hash j:  u_j = mean { e_i : i real, c_i,j == c_target,j }    (B, D), 0 if none collides
    interest = mean_j u_j                                            (B, D)
    logit = MLP([other field embeddings, interest])

Cost O(L m tau D) for hashing plus O(L m + L D) for pooling: no target-behaviour scores, no
softmax, so it scales to sequences of thousands. Hashing has no gradient; gradients reach the
colliding behaviours' embeddings through the pooling.

Implementation: for ``mean`` / ``sum`` the average over hashes is one weighted sum of behaviours,
interest = sum_i a_i e_i with a_i = (1/m) sum_j [c_i,j == c_target,j] / n_j (n_j = max(1, number
colliding in hash j) for ``mean``, 1 for ``sum``), computed without autograd
(:func:`~ctrkit.nn.sequence.collision_weights`). In training, :class:`BehaviorInputs` hands over
the batch's distinct embedding rows (U, E) and each behaviour's row index; :meth:`SDIM.pool_rows`
then projects each distinct row once for hashing (the projection is linear in the concatenated
fields) and pools with a (B, U) weight matrix, so no (B, L, D) tensor is gathered or
differentiated. Evaluation and ``aggregation="l2"`` use :meth:`SDIM.pool` on the gathered
behaviours; both give the same numbers (tests/models/test_sdim.py).

Departures: only the long-term module (no short-term target attention; the paper and FuxiCTR add
one on the recent behaviours); the colliding behaviours are *averaged* (``aggregation="mean"``)
where FuxiCTR sums them (``"sum"``) and the paper normalises the sum (``"l2"``); defaults m = 8,
tau = 3 are ours (FuxiCTR's are 1 and 4). Hashing is computed in the model on the fly (the paper
precomputes behaviour signatures in a separate server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.mlp import MLP
from ctrkit.nn.sequence import BehaviorInputs, SimHash, collision_mean, collision_weights, weighted_row_sum
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class SDIMConfig:
    embedding_dim: int = 10
    sequence_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None  # see DINConfig
    target_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None
    num_hashes: int = 8
    hash_bits: int = 3
    aggregation: Literal["mean", "sum", "l2"] = "mean"
    hidden_units: tuple[int, ...] = (200, 80)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("SDIM", kind="sequence", reference="Cao et al., SDIM (Sampling Is All You Need...), CIKM 2022")
class SDIM(CTRModel):
    config_class = SDIMConfig
    test_params = {"hidden_units": [32, 16]}

    def __init__(self, schema: FeatureSchema, config: SDIMConfig):
        super().__init__(schema, config)
        self.inputs = BehaviorInputs(schema, config.embedding_dim, config.sequence_field, config.target_field)
        # one fixed projection per pair (pairs may differ in width)
        self.hashes = nn.ModuleList(SimHash(D, config.num_hashes, config.hash_bits) for D in self.inputs.pair_dims)
        self.mlp = MLP(
            self.inputs.num_other * config.embedding_dim + sum(self.inputs.pair_dims),
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def pool(self, target: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor, pair: int = 0) -> torch.Tensor:
        """(B, D), (B, L, D), (B, L) -> (B, D): the hash-sampled interest of behaviour pair ``pair``."""
        h = self.hashes[pair]
        return collision_mean(h.codes(target, packed=True), h.codes(seq, packed=True), seq, mask, self.config.aggregation)

    def pool_rows(self, target: torch.Tensor, table: torch.Tensor, indices: tuple[torch.Tensor, ...], mask: torch.Tensor,
                  pair: int = 0) -> torch.Tensor:
        """:meth:`pool` of the behaviours ``cat_f table[indices[f]]`` (a :class:`PairView`'s distinct
        rows, training), computed on the U distinct rows: each row is projected once for hashing
        and the pooling is a weighted sum of rows, so no (B, L, D) tensor is built or
        differentiated. ``mean`` and ``sum`` aggregation only."""
        h = self.hashes[pair]
        a = collision_weights(h.codes(target, packed=True), h.gathered_codes(table, indices, packed=True), mask,
                              self.config.aggregation, table.dtype)  # (B, L), no gradient
        return torch.cat([weighted_row_sum(a, table, idx) for idx in indices], -1)

    def forward(self, batch: Batch) -> ModelOutput:
        v = self.inputs(batch)
        interests = []
        for i, p in enumerate(v.pairs):
            if p.table is not None and self.config.aggregation != "l2":
                interests.append(self.pool_rows(p.target, p.table, p.indices, p.mask, i))
            else:
                interests.append(self.pool(p.target, p.sequence, p.mask, i))
        return self.output(self.mlp(torch.cat([v.other.flatten(1), *interests], -1)))

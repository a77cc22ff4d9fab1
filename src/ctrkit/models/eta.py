"""ETA: End-to-end Target Attention with SimHash retrieval of the top-k behaviours.

Reference: Chen et al., "End-to-End User Behavior Retrieval in Click-Through Rate Prediction
Model" (ETA), 2021 (arXiv:2108.04468); cross-checked with FuxiCTR ``model_zoo/ETA/src/ETA.py``
(``topk_retrieval``: SimHash bits, Hamming similarity, padding pushed last, ``topk``, then
``MultiHeadTargetAttention`` over the retrieved behaviours).

Structure, with D the behaviour width (E x number of paired sequence fields), m = ``hash_bits``::

    s_target = sign(e_target R) (B, m), s_i = sign(e_i R) (B, L, m)     R ~ N(0, 1) (D, m), fixed
    d_i = Hamming(s_target, s_i)                                         (B, L), padding = m + 1
    top-k: the k real behaviours of smallest d_i (ties: more recent first) (B, k), fewer if L < k
    interest = MultiHeadTargetAttention(e_target, e_topk, valid)         (B, D), softmax over valid
    logit = MLP([other field embeddings, interest])

Retrieval costs O(L m D) for hashing plus O(L m) bit comparisons; attention only O(k D). Hashing
has no gradient (as in the paper the retrieval is non-differentiable; its embeddings are the
model's own, so retrieval improves as they train: "end-to-end").

Departures: only the long-term module (the paper and FuxiCTR add a short-term target attention);
defaults ``hash_bits=16``, ``topk=16`` are ours; deterministic tie-breaking towards recent
behaviours (FuxiCTR leaves ties to ``torch.topk``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.mlp import MLP
from ctrkit.nn.sequence import BehaviorInputs, MultiHeadTargetAttention, SimHash, hamming_topk
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class ETAConfig:
    embedding_dim: int = 10
    sequence_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None  # see DINConfig
    target_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None
    hash_bits: int = 16
    topk: int = 16
    attention_dim: int | None = None  # default D
    num_heads: int = 1
    attention_dropout: float = 0.0
    hidden_units: tuple[int, ...] = (200, 80)
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("ETA", kind="sequence", reference="Chen et al., ETA: End-to-End User Behavior Retrieval, 2021")
class ETA(CTRModel):
    config_class = ETAConfig
    test_params = {"hidden_units": [32, 16], "topk": 4}
    # The retrieval's top-k size is min(topk, L): a traced form fixes it at the traced length.
    export_full_length = True

    def __init__(self, schema: FeatureSchema, config: ETAConfig):
        super().__init__(schema, config)
        self.inputs = BehaviorInputs(schema, config.embedding_dim, config.sequence_field, config.target_field)
        dims = self.inputs.pair_dims
        # per pair: m one-bit hash functions = an m-bit signature, and a target attention
        self.hashes = nn.ModuleList(SimHash(D, config.hash_bits, 1) for D in dims)
        self.attention = nn.ModuleList(
            MultiHeadTargetAttention(D, config.attention_dim, config.num_heads, config.attention_dropout) for D in dims
        )
        self.mlp = MLP(
            self.inputs.num_other * config.embedding_dim + sum(dims),
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def retrieve(self, target: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor, pair: int = 0):
        """-> (index (B, k'), valid (B, k')): the top-k behaviours by Hamming distance."""
        h = self.hashes[pair]
        return hamming_topk(h.bits(target).squeeze(-1), h.bits(seq).squeeze(-1), mask, self.config.topk)

    def forward(self, batch: Batch) -> ModelOutput:
        v = self.inputs(batch)
        interests = []
        for i, p in enumerate(v.pairs):
            idx, valid = self.retrieve(p.target, p.sequence, p.mask, i)
            top = torch.gather(p.sequence, 1, idx.unsqueeze(-1).expand(-1, -1, p.sequence.shape[-1]))  # (B, k', D)
            interests.append(self.attention[i](p.target, top, valid))
        return self.output(self.mlp(torch.cat([v.other.flatten(1), *interests], -1)))

"""Field-aware embeddings: one vector per (field, other field), as FFM and ONN (NFFM) use them.

Reference: Juan et al., "Field-aware Factorization Machines for CTR Prediction", RecSys 2016
(Eq. 3: feature j1 of field f1 meets feature j2 of field f2 through <w_{j1,f2}, w_{j2,f1}>), and
Yang et al., "Operation-aware Neural Networks for User Response Prediction", Neural Networks 2020
(ONN: one embedding per operation, the copy-per-field layout plus a copy for the field itself).

One fused lookup, no loop over tables: every row of the fused table (see
:class:`ctrkit.batch.FieldLayout`) holds ``copies * D`` numbers, so a single gather gives
(B, F, copies * D), which is viewed as (B, F, copies, D). This is FuxiCTR's ``FFMv2`` / ``ONNv2``
layout (one ``FeatureEmbedding`` of width ``D * (F - 1)`` or ``D * F``); numeric fields get
``copies`` learned vectors scaled by the value and sequence fields are mean pooled, exactly as
:class:`ctrkit.nn.embedding.FeatureEmbedding` does for ordinary embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.schema import FeatureSchema


class FieldAwareEmbedding(nn.Module):
    """Per field ``copies`` embedding vectors of size ``dim``: batch -> (B, F, copies, D).

    ``include_self=False`` (FFM): ``copies = F - 1``; slot ``k`` of field ``i`` is the vector field
    ``i`` uses against field ``k`` if ``k < i`` else ``k + 1`` (the other fields in order).
    ``include_self=True`` (ONN): ``copies = F``; slot ``j`` is the vector against field ``j`` and
    slot ``i`` (the diagonal) is field ``i``'s own embedding ("copy" operation).

    Needs one embedding size for all fields (a per-field ``embedding_dim`` override in the schema
    is rejected by the fused lookup with a clear error).
    """

    def __init__(self, schema: FeatureSchema, dim: int, *, include_self: bool, init_std: float = 1e-4):
        super().__init__()
        # FeatureEmbedding's field order and count: categorical, numeric, sequences.
        self.num_fields = len(schema.categorical) + len(schema.numeric) + len(schema.sequences)
        self.dim = dim
        self.include_self = include_self
        self.copies = self.num_fields if include_self else max(self.num_fields - 1, 1)
        self.embedding = FeatureEmbedding(schema, self.copies * dim, init_std=init_std)

    def forward(self, batch: Batch) -> torch.Tensor:
        e = self.embedding(batch)  # (B, F, copies * D), one gather for all categorical fields
        return e.view(e.shape[0], self.num_fields, self.copies, self.dim)


def slot_of(i: int, j: int, include_self: bool) -> int:
    """Slot of field ``i``'s vector that faces field ``j`` (i != j unless include_self)."""
    if include_self or j < i:
        return j
    return j - 1


class FieldAwarePairs(nn.Module):
    """For every field pair (i, j), i < j, the element-wise product v_{i,j} * v_{j,i}.

    e: (B, F, copies, D) from :class:`FieldAwareEmbedding` -> (B, F*(F-1)/2, D), pairs in
    row-major ``torch.triu_indices`` order ((0,1), (0,2), ..., (1,2), ...). Summing the last axis
    gives FFM's per-pair term <v_{i,j}, v_{j,i}>; ONN feeds the inner products to its MLP.
    """

    def __init__(self, num_fields: int, *, include_self: bool):
        super().__init__()
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        # Distinct tensors per buffer (clones): tracing for TorchScript rejects a module whose
        # buffers share storage.
        left_slot = cols.clone() if include_self else cols - 1  # field i faces j > i
        right_slot = rows.clone()  # field j faces i < j: slot i either way
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.register_buffer("left_slot", left_slot, persistent=False)
        self.register_buffer("right_slot", right_slot, persistent=False)

    @property
    def num_pairs(self) -> int:
        return int(self.rows.numel())

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        left = e[:, self.rows, self.left_slot]  # (B, P, D): v_{i, j}
        right = e[:, self.cols, self.right_slot]  # (B, P, D): v_{j, i}
        return left * right


def diagonal(e: torch.Tensor) -> torch.Tensor:
    """ONN's own-field embeddings: e (B, F, F, D) -> (B, F, D), slot i of field i."""
    F = e.shape[1]
    idx = torch.arange(F, device=e.device)
    return e[:, idx, idx]

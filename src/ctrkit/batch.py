"""The typed, frozen batch every model consumes, and the layout of the fused embedding table.

A model's ``forward`` takes one :class:`Batch`. Ids arrive with the fused-table offsets already
applied, so one embedding lookup serves every single-valued field (see :class:`FieldLayout`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping

import numpy as np
import torch

from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class SequenceBatch:
    """A ragged sequence field, padded to the longest row of the batch.

    values:  (B, L) int64, global rows of the fused embedding table; padded slots are the owner's
             padding row (local id 0), and must be masked by ``lengths``.
    lengths: (B,) int64, number of real items per row; 0 is valid (an empty history).
    """

    values: torch.Tensor
    lengths: torch.Tensor

    def mask(self) -> torch.Tensor:
        """(B, L) bool, True on real items."""
        L = self.values.shape[1]
        return torch.arange(L, device=self.lengths.device)[None, :] < self.lengths[:, None]


@dataclass(frozen=True)
class Batch:
    """One mini-batch.

    ids:       (B, F) int64, one column per single-valued categorical field (``schema.categorical``
               order), global rows of the fused embedding table (offsets applied).
    dense:     (B, N) float32, one column per numeric field (``schema.numeric`` order); N may be 0.
    sequences: name -> :class:`SequenceBatch`, one per sequence field.
    labels:    task name -> (B,) float32 in {0, 1}.
    group:     (B,) int64 group ids for gAUC, or None.
    domain:    (B,) int64 domain ids (0-based), or None.
    """

    ids: torch.Tensor
    dense: torch.Tensor
    sequences: Mapping[str, SequenceBatch] = field(default_factory=dict)
    labels: Mapping[str, torch.Tensor] = field(default_factory=dict)
    group: torch.Tensor | None = None
    domain: torch.Tensor | None = None

    def __len__(self) -> int:
        # ids is (B, F) even when F == 0, so its first dimension is always the batch size.
        return int(self.ids.shape[0])

    def to(self, device: torch.device | str) -> "Batch":
        """A copy on ``device`` (the trainer decides devices, never a model)."""
        return Batch(
            ids=self.ids.to(device),
            dense=self.dense.to(device),
            sequences={
                k: SequenceBatch(v.values.to(device), v.lengths.to(device))
                for k, v in self.sequences.items()
            },
            labels={k: v.to(device) for k, v in self.labels.items()},
            group=None if self.group is None else self.group.to(device),
            domain=None if self.domain is None else self.domain.to(device),
        )


@dataclass(frozen=True)
class FieldLayout:
    """Where each vocabulary lives in the one fused embedding table.

    Every vocabulary-owning field (single-valued categorical, bucketized numeric, or a sequence
    with its own vocabulary) gets a contiguous block of rows; fields that share a vocabulary use
    the owner's block. ``offsets[j]`` is the first row of ``ids`` column ``j``.
    """

    owners: tuple[str, ...]  # vocabulary owners in table order
    owner_offset: Mapping[str, int]
    owner_size: Mapping[str, int]
    field_owner: Mapping[str, str]  # every categorical/sequence field -> its owner
    categorical: tuple[str, ...]  # ids column order
    sequences: tuple[str, ...]
    total_rows: int

    @classmethod
    def from_schema(cls, schema: FeatureSchema) -> "FieldLayout":
        if not schema.is_fitted:
            raise ValueError("FieldLayout needs a fitted schema (vocab sizes are set by fitting)")
        names = [f.name for f in schema.categorical] + [f.name for f in schema.sequences]
        owners: list[str] = []
        field_owner: dict[str, str] = {}
        for n in names:
            o = schema.vocab_owner(n)
            field_owner[n] = o
            if o not in owners:
                owners.append(o)
        offset, owner_offset, owner_size = 0, {}, {}
        for o in owners:
            owner_offset[o] = offset
            owner_size[o] = schema.vocab_size(o)
            offset += owner_size[o]
        return cls(
            owners=tuple(owners),
            owner_offset=owner_offset,
            owner_size=owner_size,
            field_owner=field_owner,
            categorical=tuple(f.name for f in schema.categorical),
            sequences=tuple(f.name for f in schema.sequences),
            total_rows=offset,
        )

    def offset(self, name: str) -> int:
        return self.owner_offset[self.field_owner[name]]

    @property
    def categorical_offsets(self) -> np.ndarray:
        """(F,) int64 offsets to add to local ids, in ``ids`` column order."""
        return np.array([self.offset(n) for n in self.categorical], dtype=np.int64)


def batch_fields() -> list[str]:
    return [f.name for f in fields(Batch)]

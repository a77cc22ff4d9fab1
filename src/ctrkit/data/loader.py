"""Batches sliced from memory-mapped store columns, with no per-row Python.

A batch is a handful of numpy gathers (one per array, not per field or row), one int32 -> int64
conversion with the fused-table offsets added, and zero-copy ``torch.from_numpy``. Shuffling is a
per-epoch permutation drawn from ``(seed, epoch)``, so an epoch's order is reproducible and a
resumed run can skip to any batch. An optional background thread prepares the next batches while
the model trains on the current one (numpy gathers release the GIL).
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np
import torch

from ctrkit.batch import Batch, FieldLayout, SequenceBatch
from ctrkit.data.store import SplitArrays, Store
from ctrkit.schema import FeatureSchema


class BatchLoader:
    """Iterate one split of a store in batches.

    ``rank``/``world_size`` shard the batches of an epoch across data-parallel processes (batch
    ``i`` goes to rank ``i % world_size``), so every process sees a disjoint part of the same
    permutation.
    """

    def __init__(
        self,
        store: Store | None,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        prefetch: int = 2,
        rank: int = 0,
        world_size: int = 1,
        arrays: SplitArrays | None = None,
        schema: FeatureSchema | None = None,
    ):
        """Batches of ``store``'s ``split``, or of in-memory ``arrays`` with their ``schema``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if store is not None:
            self.schema: FeatureSchema = store.schema
            self.arrays: SplitArrays = store.arrays(split)
        elif arrays is not None and schema is not None:
            self.schema, self.arrays = schema, arrays
        else:
            raise ValueError("BatchLoader needs a store, or arrays and a schema")
        self.layout = FieldLayout.from_schema(self.schema)
        self.offsets = self.layout.categorical_offsets.astype(np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.rank = rank
        self.world_size = world_size
        self.split = split
        self.n = len(self.arrays)
        # Arrays encoded without labels (prediction) give batches with no labels.
        self.task_names = self.schema.task_names if self.arrays.labels.shape[1] else []
        self.seq_offsets = {f.name: self.layout.offset(f.name) for f in self.schema.sequences}

    def num_global_batches(self) -> int:
        """Batches per epoch over all ranks together."""
        return self._num_global_batches()

    def _num_global_batches(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return (self.n + self.batch_size - 1) // self.batch_size

    def __len__(self) -> int:
        """Batches this rank gets per epoch."""
        g = self._num_global_batches()
        return len(range(self.rank, g, self.world_size))

    def order(self, epoch: int) -> np.ndarray | None:
        """The epoch's row permutation (None when not shuffling)."""
        if not self.shuffle:
            return None
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def epoch(self, epoch: int = 0, start_batch: int = 0) -> Iterator[Batch]:
        """Batches of ``epoch`` for this rank, starting at this rank's ``start_batch``-th batch."""
        perm = self.order(epoch)
        global_ids = list(range(self.rank, self._num_global_batches(), self.world_size))[start_batch:]

        def make(i: int) -> Batch:
            a = i * self.batch_size
            b = min(a + self.batch_size, self.n)
            if perm is None:
                return self._slice(slice(a, b))
            # Sorted indices read the memory map in file order; order within a batch is irrelevant
            # to the gradient.
            return self._slice(np.sort(perm[a:b]))

        if self.prefetch <= 0:
            for i in global_ids:
                yield make(i)
            return
        yield from _prefetched((make(i) for i in global_ids), self.prefetch)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)

    def _slice(self, idx: slice | np.ndarray) -> Batch:
        a = self.arrays
        ids = a.ids[idx].astype(np.int64)
        ids += self.offsets
        labels = np.asarray(a.labels[idx])
        seqs = {}
        for name, off in self.seq_offsets.items():
            seqs[name] = _gather_sequence(a.seq_values[name], a.seq_offsets[name], idx, off)
        return Batch(
            ids=torch.from_numpy(ids),
            dense=torch.from_numpy(_owned(a.dense[idx])),
            sequences=seqs,
            labels={t: torch.from_numpy(_owned(labels[:, j])) for j, t in enumerate(self.task_names)},
            group=None if a.group is None else torch.from_numpy(_owned(a.group[idx], np.int64)),
            domain=None if a.domain is None else torch.from_numpy(_owned(a.domain[idx], np.int64)),
        )


def _owned(x: np.ndarray, dtype: type | None = None) -> np.ndarray:
    """A contiguous, writable array. A slice of the read-only memory map is copied: a tensor that
    aliased it would crash the process (SIGSEGV) on any in-place op; gathers are copies already."""
    x = np.ascontiguousarray(x, dtype=dtype)
    return x if x.flags.writeable else np.array(x)


def _gather_sequence(values: np.ndarray, offsets: np.ndarray, idx: slice | np.ndarray, table_offset: int) -> SequenceBatch:
    """Ragged rows ``idx`` -> padded (B, L) global rows + (B,) lengths, vectorised."""
    if isinstance(idx, slice):
        starts = np.asarray(offsets[idx.start : idx.stop], dtype=np.int64)
        ends = np.asarray(offsets[idx.start + 1 : idx.stop + 1], dtype=np.int64)
    else:
        starts = np.asarray(offsets[idx], dtype=np.int64)
        ends = np.asarray(offsets[idx + 1], dtype=np.int64)
    lengths = ends - starts
    L = int(lengths.max()) if lengths.size else 0
    B = lengths.size
    if L == 0:
        vals = np.full((B, 1), table_offset, dtype=np.int64)  # one padded slot keeps shapes valid
        return SequenceBatch(torch.from_numpy(vals), torch.from_numpy(lengths))
    pos = np.arange(L, dtype=np.int64)
    mask = pos[None, :] < lengths[:, None]
    gather = np.where(mask, starts[:, None] + pos[None, :], 0)
    vals = np.where(mask, values[gather], 0).astype(np.int64) + table_offset
    return SequenceBatch(torch.from_numpy(vals), torch.from_numpy(lengths))


_DONE = object()


def _prefetched(it: Iterator[Batch], depth: int) -> Iterator[Batch]:
    """Run ``it`` in a background thread, ``depth`` batches ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as e:  # surface loader errors in the consuming thread
            q.put(e)
            return
        q.put(_DONE)

    t = threading.Thread(target=work, daemon=True, name="ctrkit-prefetch")
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # Drain so the worker is not blocked on a full queue and can see the stop flag.
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)

"""BatchLoader: shapes and dtypes, fused-table offsets, shuffling reproducible per (seed, epoch),
every row once per epoch, rank sharding, resuming at a batch, padded sequences, prefetch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ctrkit.batch import Batch, FieldLayout
from ctrkit.data import BatchLoader, DataSpec, build_store, source_file
from ctrkit.data.store import Store
from ctrkit.schema import FeatureSchema

N = 1003  # not a multiple of any batch size used below


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    d = tmp_path_factory.mktemp("loader")
    rng = np.random.default_rng(0)
    lines = ["row,a,b,x,hist,tags,y,g"]
    for i in range(N):
        hist = "^".join(f"a{k}" for k in rng.integers(0, 30, rng.integers(0, 7)))
        tags = "|".join(f"t{k}" for k in rng.integers(0, 5, rng.integers(0, 3)))
        lines.append(f"r{i},a{rng.integers(0, 30)},b{rng.integers(0, 8)},{rng.normal():.4f},{hist},{tags},{i % 2},u{i % 17}")
    (d / "train.csv").write_text("\n".join(lines) + "\n")
    schema = FeatureSchema.from_dict(
        {
            "features": [
                {"name": "row", "kind": "categorical"},  # unique per row: identifies rows in batches
                {"name": "a", "kind": "categorical"},
                {"name": "b", "kind": "categorical"},
                {"name": "x", "kind": "numeric"},
                {"name": "hist", "kind": "sequence", "max_len": 5, "share_vocab_with": "a"},
                {"name": "tags", "kind": "sequence", "delimiter": "|", "max_len": 4},
            ],
            "tasks": [{"name": "click", "column": "y"}],
            "group": "g",
        }
    )
    return build_store(DataSpec(schema, {"train": source_file(d / "train.csv")}), d / "store", progress=False)


def row_ids(batch: Batch, layout: FieldLayout) -> list[int]:
    """Local id of the unique 'row' field: one per data row."""
    return (batch.ids[:, 0] - layout.offset("row")).tolist()


def epoch_rows(loader: BatchLoader, epoch: int = 0, **kw) -> list[int]:
    return [r for b in loader.epoch(epoch, **kw) for r in row_ids(b, loader.layout)]


def test_shapes_and_dtypes(store: Store) -> None:
    loader = BatchLoader(store, "train", 100)
    batches = list(loader)
    assert len(batches) == len(loader) == 11
    b = batches[0]
    assert b.ids.shape == (100, 3) and b.ids.dtype == torch.int64
    assert b.dense.shape == (100, 1) and b.dense.dtype == torch.float32
    assert set(b.labels) == {"click"} and b.labels["click"].shape == (100,) and b.labels["click"].dtype == torch.float32
    assert b.group is not None and b.group.dtype == torch.int64 and b.group.shape == (100,)
    assert b.domain is None
    assert set(b.sequences) == {"hist", "tags"}
    assert len(batches[-1]) == N - 1000
    assert BatchLoader(store, "train", 100, drop_last=True).__len__() == 10
    assert sum(len(b) for b in BatchLoader(store, "train", 100, drop_last=True)) == 1000


def test_values_match_store(store: Store) -> None:
    arr = store.arrays("train")
    layout = FieldLayout.from_schema(store.schema)
    b = next(iter(BatchLoader(store, "train", 64, prefetch=0)))
    np.testing.assert_array_equal(b.ids.numpy() - layout.categorical_offsets, arr.ids[:64])
    np.testing.assert_array_equal(b.dense.numpy(), arr.dense[:64])
    np.testing.assert_array_equal(b.labels["click"].numpy(), arr.labels[:64, 0])


def test_offsets_within_field_blocks(store: Store) -> None:
    layout = FieldLayout.from_schema(store.schema)
    for b in BatchLoader(store, "train", 256):
        for j, name in enumerate(layout.categorical):
            lo, size = layout.offset(name), layout.owner_size[layout.field_owner[name]]
            col = b.ids[:, j]
            assert bool(((col >= lo) & (col < lo + size)).all()), name
        for name, seq in b.sequences.items():
            lo, size = layout.offset(name), layout.owner_size[layout.field_owner[name]]
            assert bool(((seq.values >= lo) & (seq.values < lo + size)).all()), name
    assert layout.offset("hist") == layout.offset("a")  # shared vocabulary, shared block
    assert layout.total_rows == sum(layout.owner_size.values())


def test_no_shuffle_is_file_order(store: Store) -> None:
    loader = BatchLoader(store, "train", 128)
    rows = epoch_rows(loader)
    arr_rows = store.arrays("train").ids[:, 0].tolist()
    assert rows == arr_rows


def test_shuffle_reproducible_and_differs_across_epochs(store: Store) -> None:
    a = BatchLoader(store, "train", 100, shuffle=True, seed=7)
    b = BatchLoader(store, "train", 100, shuffle=True, seed=7)
    c = BatchLoader(store, "train", 100, shuffle=True, seed=8)
    e0, e0_again, e1 = epoch_rows(a, 0), epoch_rows(b, 0), epoch_rows(a, 1)
    assert e0 == e0_again
    assert e0 != e1
    assert epoch_rows(c, 0) != e0
    assert e0 != epoch_rows(BatchLoader(store, "train", 100), 0)
    # batch membership changes across epochs, not only the order inside batches
    first0 = set(next(iter(a.epoch(0))).ids[:, 0].tolist())
    first1 = set(next(iter(a.epoch(1))).ids[:, 0].tolist())
    assert first0 != first1


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_row_once_per_epoch(store: Store, shuffle: bool) -> None:
    loader = BatchLoader(store, "train", 97, shuffle=shuffle, seed=3)
    for epoch in (0, 1):
        rows = epoch_rows(loader, epoch)
        assert len(rows) == N and len(set(rows)) == N


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharding_disjoint_and_complete(store: Store, world_size: int) -> None:
    shards = [epoch_rows(BatchLoader(store, "train", 50, shuffle=True, seed=1, rank=r, world_size=world_size), 4)
              for r in range(world_size)]  # fmt: skip
    seen = [set(s) for s in shards]
    for i in range(world_size):
        for j in range(i + 1, world_size):
            assert not (seen[i] & seen[j])
    assert sum(len(s) for s in shards) == N and set().union(*seen) == set(epoch_rows(BatchLoader(store, "train", 50), 0))
    lens = [len(BatchLoader(store, "train", 50, rank=r, world_size=world_size)) for r in range(world_size)]
    assert sum(lens) == 21 and max(lens) - min(lens) <= 1


def test_start_batch_resume(store: Store) -> None:
    loader = BatchLoader(store, "train", 100, shuffle=True, seed=5)
    full = [row_ids(b, loader.layout) for b in loader.epoch(2)]
    resumed = [row_ids(b, loader.layout) for b in loader.epoch(2, start_batch=4)]
    assert resumed == full[4:]
    sharded = BatchLoader(store, "train", 100, shuffle=True, seed=5, rank=1, world_size=2)
    s_full = [row_ids(b, loader.layout) for b in sharded.epoch(2)]
    assert [row_ids(b, loader.layout) for b in sharded.epoch(2, start_batch=2)] == s_full[2:]
    assert s_full == full[1::2]


def test_sequences_padded_with_lengths(store: Store) -> None:
    arr = store.arrays("train")
    layout = FieldLayout.from_schema(store.schema)
    b = next(iter(BatchLoader(store, "train", 200, prefetch=0)))
    for name, max_len in (("hist", 5), ("tags", 4)):
        seq = b.sequences[name]
        off = arr.seq_offsets[name]
        lengths = np.diff(off[:201])
        assert seq.lengths.dtype == torch.int64 and seq.lengths.tolist() == lengths.tolist()
        assert seq.values.dtype == torch.int64 and seq.values.shape == (200, max(1, int(lengths.max())))
        assert int(lengths.max()) <= max_len and (lengths == 0).any()
        base = layout.offset(name)
        for i in range(200):
            n = int(lengths[i])
            want = arr.seq_values[name][off[i] : off[i] + n] + base
            assert seq.values[i, :n].tolist() == want.tolist()
            assert bool((seq.values[i, n:] == base).all())  # padding: the owner's row 0
        mask = seq.mask()
        assert mask.sum().item() == int(lengths.sum())


def test_prefetch_on_off_identical(store: Store) -> None:
    def dump(prefetch: int) -> list[tuple]:
        loader = BatchLoader(store, "train", 64, shuffle=True, seed=11, prefetch=prefetch)
        return [
            (b.ids.tolist(), b.dense.tolist(), b.labels["click"].tolist(), b.sequences["hist"].values.tolist(),
             b.sequences["tags"].lengths.tolist(), b.group.tolist())  # fmt: skip
            for b in loader.epoch(3)
        ]

    assert dump(0) == dump(2) == dump(8)


def test_prefetch_early_exit_does_not_hang(store: Store) -> None:
    loader = BatchLoader(store, "train", 10, prefetch=2)
    for i, _ in enumerate(loader.epoch(0)):
        if i == 3:
            break
    assert len(list(loader.epoch(1))) == len(loader)


def test_bad_batch_size(store: Store) -> None:
    with pytest.raises(ValueError):
        BatchLoader(store, "train", 0)
    with pytest.raises(KeyError):
        BatchLoader(store, "nope", 10)


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_are_writable(store: Store, shuffle: bool) -> None:
    """In-place ops on a batch must not touch (or crash on) the read-only memory map."""
    before = np.array(store.arrays("train").labels[:, 0])
    for b in BatchLoader(store, "train", 128, shuffle=shuffle, prefetch=0):
        b.labels["click"].mul_(0.5)
        b.dense.add_(1.0)
        b.group.add_(1)
        b.ids.add_(1)
    np.testing.assert_array_equal(store.arrays("train").labels[:, 0], before)

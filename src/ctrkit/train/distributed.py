"""Gradient averaging for data-parallel training over ``torch.distributed`` (e.g. ``torchrun``).

Why not ``DistributedDataParallel``: ctrkit's embedding tables produce *sparse* (row) gradients,
which DDP's bucketed all-reduce does not take, and the row-sparse optimizers want to see only the
rows some rank touched. So after ``backward`` every rank calls :func:`average_gradients`:

* dense gradients: flattened into one buffer, one ``all_reduce(SUM)``, divided by the world size;
  a parameter without a gradient on this rank contributes zeros (the same buffer layout on every
  rank is what keeps the collective consistent);
* sparse gradients: coalesced locally (rows summed), then every rank's (rows, values) are
  all-gathered (padded to the largest rank's row count) and concatenated into one uncoalesced
  sparse gradient divided by the world size; the usual coalesce in gradient clipping / the
  optimizer sums rows that several ranks touched.

With each rank's loss the mean over its own batch and equal batch sizes, the result is exactly the
gradient of the mean loss over the union of the ranks' batches, so ``world_size`` ranks with batch
``b`` train like one process with batch ``world_size * b`` (tested).
"""

from __future__ import annotations

import torch
from torch import nn

from ctrkit.train.optimizers import coalesce_rows

__all__ = ["average_gradients", "sparse_parameters"]


def sparse_parameters(model: nn.Module) -> set[int]:
    """ids of the parameters that receive sparse gradients (``nn.Embedding(sparse=True)`` tables)."""
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse}


def average_gradients(params: list[nn.Parameter], sparse: set[int]) -> None:
    """Replace every gradient in ``params`` by its mean over all ranks of the default process group.

    ``params``: the same list, in the same order, on every rank; ``sparse``: ids of the parameters
    whose gradients are sparse (see :func:`sparse_parameters`). No-op without a process group.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    if world == 1:
        return
    dense = [p for p in params if id(p) not in sparse]
    if dense:
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in dense])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(world)
        # Each gradient becomes a view of its slice of the reduced buffer: no copy back.
        offset = 0
        for p in dense:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)
            offset += n
    for p in params:
        if id(p) in sparse:
            p.grad = _all_gather_sparse(p, world)


def _all_gather_sparse(p: nn.Parameter, world: int) -> torch.Tensor:
    """This rank's sparse gradient of ``p`` -> the mean over ranks as one sparse COO gradient."""
    import torch.distributed as dist

    row_shape = p.shape[1:]
    width = int(torch.Size(row_shape).numel())
    if p.grad is None:
        rows = torch.empty(0, dtype=torch.long)
        vals = p.new_zeros(0, width)
    else:
        rows, vals = coalesce_rows(p.grad)
        vals = vals.reshape(rows.numel(), width)
    counts = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([rows.numel()], dtype=torch.long))
    sizes = [int(c) for c in counts]
    longest = max(sizes)
    # all_gather needs equal shapes: pad to the longest, cut the padding off after.
    pad_rows = torch.zeros(longest, dtype=torch.long)
    pad_rows[: rows.numel()] = rows
    pad_vals = vals.new_zeros(longest, width)
    pad_vals[: rows.numel()] = vals
    all_rows = [torch.empty_like(pad_rows) for _ in range(world)]
    all_vals = [torch.empty_like(pad_vals) for _ in range(world)]
    dist.all_gather(all_rows, pad_rows)
    dist.all_gather(all_vals, pad_vals)
    idx = torch.cat([r[:n] for r, n in zip(all_rows, sizes)])
    val = torch.cat([v[:n] for v, n in zip(all_vals, sizes)]).div_(world)
    return torch.sparse_coo_tensor(idx.unsqueeze(0), val.reshape(-1, *row_shape), p.shape, check_invariants=False)

"""Row-sparse optimizers for embedding tables trained with sparse (row) gradients.

With ``nn.Embedding.sparse = True`` (see :func:`ctrkit.nn.embedding.set_sparse_embeddings`),
backward gives a table a sparse COO gradient holding one row per id *occurrence* in the batch
(duplicates not yet summed). The optimizers here:

* sum duplicate ids once (in C by slots, see below; else one sort plus a fused segment sum, much
  faster than ``Tensor.coalesce()`` on CPU; an already coalesced gradient is used as it is);
* touch only the rows present (in C in place; else gather their weights and state with
  ``index_select``, update the gathered block with vectorised ops and write it back with
  ``index_copy_``; no Python loop over rows);
* apply L2 weight decay only to the rows present ("mini-batch aware" regularisation of DIN, Zhou
  et al. KDD 2018; the same as FuxiCTR's ``embedding_regularizer`` for the rows of the batch, since
  d/dw (wd/2)·||w||² = wd·w);
* also take dense gradients, and then update every row with the same formula, so one optimizer
  serves both the sparse and the dense training modes (and non-embedding parameters).

Both inherit from :class:`torch.optim.Optimizer`, so ``state_dict``/``load_state_dict`` and learning
rate schedulers (which edit ``param_group["lr"]``) work as for any torch optimizer.

For float32 tables on the CPU, coalescing and RowSparseAdam's update run in
``ctrkit.train._rowsparse`` (a small C extension built at install): coalescing marks each id in a
per-table array of slots instead of sorting every id, and the update reads and writes each present
row of the table and its moments once instead of gathering, updating and scattering copies. Any
other case (another dtype or device, an install without the extension, ``CTRKIT_NATIVE_SPARSE=0``)
takes the PyTorch ops below; both give the same results up to float rounding.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch.optim import Optimizer

try:  # built by setup.py when a C compiler is present; optional
    from ctrkit.train import _rowsparse as _native
except ImportError:  # pragma: no cover - depends on the install
    _native = None

__all__ = ["RowSparseAdam", "RowSparseAdagrad", "coalesce_rows", "native_available"]

# The native coalescing keeps one int32 slot per table row (all -1 between calls). Past this many
# rows, and more than 16 per id of the gradient, the slots would cost more memory than the sort.
_MAX_SLOT_ROWS = 1 << 24
_slots = threading.local()


def native_available() -> bool:
    """True when the C row-sparse update is built and not switched off (``CTRKIT_NATIVE_SPARSE=0``)."""
    return _native is not None and os.environ.get("CTRKIT_NATIVE_SPARSE", "1") != "0"


def _slot_array(num_rows: int) -> torch.Tensor:
    """This thread's (num_rows,) int32 slots, all -1 (the C code leaves them so)."""
    arrays = getattr(_slots, "arrays", None)
    if arrays is None:
        arrays = _slots.arrays = {}
    slot = arrays.get(num_rows)
    if slot is None:
        slot = arrays[num_rows] = torch.full((num_rows,), -1, dtype=torch.int32)
    return slot


def _native_coalesce(idx: torch.Tensor, vals: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """coalesce_rows in C, or None when this gradient does not qualify."""
    n, d = vals.shape
    if not (
        native_available()
        and idx.dtype == torch.int64
        and vals.dtype == torch.float32
        and idx.device.type == "cpu"
        and vals.device.type == "cpu"
        and d > 0
        and n < 2**31  # slots are int32
        and num_rows <= max(_MAX_SLOT_ROWS, 16 * n)
    ):
        return None
    idx, vals = idx.contiguous(), vals.contiguous()
    rows = torch.empty(n, dtype=torch.int64)
    sums = torch.empty(n, d, dtype=torch.float32)
    u = _native.coalesce(idx.data_ptr(), n, vals.data_ptr(), d, num_rows, _slot_array(num_rows).data_ptr(), rows.data_ptr(), sums.data_ptr())
    return rows[:u], sums[:u]


def coalesce_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse COO gradient (sparse over dim 0) -> (rows, values): sorted unique rows (U,) and the
    summed gradient of each, (U, prod(dense dims)).

    Equivalent to ``grad.coalesce()`` (duplicates summed in their original order), but on CPU
    ``coalesce()`` is several times slower than a stable sort of the row ids followed by one
    ``embedding_bag(mode="sum")`` (a fused segment sum) over the permutation. A gradient already
    marked coalesced is returned without copying: callers must not modify ``values`` in place.
    """
    if grad.sparse_dim() != 1:
        raise ValueError(f"expected a gradient sparse over dim 0 only, got sparse_dim={grad.sparse_dim()}")
    idx = grad._indices()[0]
    vals = grad._values()
    vals = vals.reshape(vals.shape[0], -1)
    if grad.is_coalesced() or idx.numel() <= 1:
        return idx, vals
    native = _native_coalesce(idx, vals, grad.shape[0])
    if native is not None:
        return native
    ids, perm = torch.sort(idx, stable=True)
    rows, counts = torch.unique_consecutive(ids, return_counts=True)
    if rows.numel() == idx.numel():  # no duplicates: only the order changes
        return rows, vals.index_select(0, perm)
    if vals.dtype in (torch.float32, torch.float64) and vals.shape[1] > 0:
        offsets = torch.cumsum(counts, 0).sub_(counts)
        return rows, F.embedding_bag(perm, vals, offsets, mode="sum")
    inverse = torch.repeat_interleave(torch.arange(rows.numel(), device=idx.device), counts)
    summed = vals.new_zeros(rows.numel(), vals.shape[1])
    return rows, summed.index_add_(0, inverse, vals.index_select(0, perm))


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    """View of ``t`` as (rows, row_size): dim 0 is the row; a 0-dim tensor is one row."""
    if t.dim() == 0:
        return t.view(1, 1)
    return t.view(t.shape[0], -1)


def _per_row(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(rows,) -> shaped to broadcast against ``like`` along dim 0."""
    return t.view((-1,) + (1,) * (like.dim() - 1)) if like.dim() else t.view(())


def _row_count(p: torch.Tensor) -> tuple[int, ...]:
    return (p.shape[0],) if p.dim() else ()


def _check_sparse(p: torch.Tensor, grad: torch.Tensor, name: str) -> None:
    if not p.is_contiguous():
        raise ValueError(f"{name}: a parameter with a sparse gradient must be contiguous")
    if grad.shape != p.shape:
        raise ValueError(f"{name}: gradient shape {tuple(grad.shape)} != parameter shape {tuple(p.shape)}")


class RowSparseAdam(Optimizer):
    """Adam (L2 weight decay, as ``torch.optim.Adam(weight_decay=...)``) that, for a sparse
    gradient, updates only the rows present in it ("lazy" Adam, as ``torch.optim.SparseAdam``).

    For each row r present, with g the coalesced gradient of the row::

        g   = g + weight_decay * w[r]                     # mini-batch aware L2
        m   = beta1 * m[r] + (1 - beta1) * g
        v   = beta2 * v[r] + (1 - beta2) * g * g
        t   = step[r] = step[r] + 1                       # per-row step
        w[r] -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    which is term for term ``torch.optim.Adam``'s update. Rows absent from the gradient keep their
    weights, moments and step unchanged. A dense gradient updates every row with the same formula.

    Per-row bias correction: ``state["step"]`` holds one update count per row (int32, shape
    ``(rows,)``), not one per table. Under lazy updates a row's moments are exponential averages of
    only the ``k`` gradients that row has received, initialised at zero, so their bias is
    ``1 - beta**k``; correcting with the global step ``T >> k`` (what ``SparseAdam`` and TF's
    LazyAdam do) leaves a rarely seen row's moments uncorrected, and because m and sqrt(v) are
    biased differently its steps are distorted -- its first update is ``lr * (1 - beta1) /
    sqrt(1 - beta2)`` (about 3.2 lr for the default betas) instead of ``lr``. With the per-row
    count every row's first update has magnitude lr, whenever the row first appears, which matters
    for the long tail of ids. Cost: 4 bytes per row next to the 2 x dim x 4 bytes of the moments.
    When every row is present in every step (or with dense gradients only), the per-row step is the
    global step and the optimizer is exactly Adam.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if not eps >= 0.0:
            raise ValueError(f"invalid eps: {eps}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"invalid betas: {betas}")
        if not weight_decay >= 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _init_state(self, p: torch.Tensor) -> dict:
        state = self.state[p]
        if len(state) == 0:
            # "step" (not another name) so load_state_dict keeps it int32: torch casts every
            # other floating/int state tensor to the parameter's dtype.
            state["step"] = torch.zeros(_row_count(p), dtype=torch.int32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._init_state(p)
                if p.grad.is_sparse:
                    self._sparse_update(p, p.grad, state, group)
                else:
                    self._dense_update(p, p.grad, state, group)
        return loss

    @staticmethod
    def _bias_corrections(t: torch.Tensor, beta1: float, beta2: float, lr: float, dtype):
        """Per-row step counts -> (lr / bc1, sqrt(bc2)) in ``dtype``, computed in float64."""
        tf = t.to(torch.float64)
        step_size = lr / (1.0 - torch.pow(beta1, tf))
        bc2_sqrt = (1.0 - torch.pow(beta2, tf)).sqrt_()
        return step_size.to(dtype), bc2_sqrt.to(dtype)

    def _sparse_update(self, p, grad, state, group):
        _check_sparse(p, grad, "RowSparseAdam")
        beta1, beta2 = group["betas"]
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        rows, g = coalesce_rows(grad)
        if rows.numel() == 0:
            return
        if self._native_update(p, rows, g, state, group):
            return
        w2 = _as_rows(p)
        m2, v2 = _as_rows(state["exp_avg"]), _as_rows(state["exp_avg_sq"])
        step = state["step"].view(-1)

        w = w2.index_select(0, rows)
        if wd != 0:
            g = g.add(w, alpha=wd)
        m = m2.index_select(0, rows).lerp_(g, 1 - beta1)
        v = v2.index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        m2.index_copy_(0, rows, m)
        v2.index_copy_(0, rows, v)
        t = step.index_select(0, rows).add_(1)
        step.index_copy_(0, rows, t)

        step_size, bc2_sqrt = self._bias_corrections(t, beta1, beta2, lr, p.dtype)
        denom = v.sqrt_().div_(bc2_sqrt.unsqueeze(1)).add_(eps)
        w.sub_(m.div_(denom).mul_(step_size.unsqueeze(1)))
        w2.index_copy_(0, rows, w)

    @staticmethod
    def _native_update(p, rows, g, state, group) -> bool:
        """The sparse update in C, in place; False (nothing done) when it does not apply."""
        m, v, step = state["exp_avg"], state["exp_avg_sq"], state["step"]
        if not (
            native_available()
            and p.dim() >= 1
            and all(t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous() for t in (p, m, v))
            and g.dtype == torch.float32
            and rows.dtype == torch.int64
            and step.dtype == torch.int32
            and step.is_contiguous()
            and step.numel() == p.shape[0]
        ):
            return False
        lo, hi = torch.aminmax(rows)
        if int(lo) < 0 or int(hi) >= p.shape[0]:  # the C loop trusts the rows: never write outside
            raise IndexError(f"RowSparseAdam: gradient rows span [{int(lo)}, {int(hi)}], the table has {p.shape[0]} rows")
        rows, g = rows.contiguous(), g.contiguous()
        beta1, beta2 = group["betas"]
        _native.adam(
            rows.data_ptr(), rows.numel(), g.data_ptr(), p.data_ptr(), m.data_ptr(), v.data_ptr(), step.data_ptr(),
            p.numel() // p.shape[0], group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
        )
        return True

    def _dense_update(self, p, grad, state, group):
        beta1, beta2 = group["betas"]
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        if wd != 0:
            grad = grad.add(p, alpha=wd)
        exp_avg, exp_avg_sq, step = state["exp_avg"], state["exp_avg_sq"], state["step"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step.add_(1)
        lo, hi = (step.aminmax() if step.dim() else (step, step))
        if lo == hi:  # every row updated equally often: scalar corrections, exactly torch Adam
            t = int(hi)
            bc1 = 1 - beta1**t
            bc2_sqrt = math.sqrt(1 - beta2**t)
            denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-lr / bc1)
        else:  # rows previously updated sparsely carry their own counts
            step_size, bc2_sqrt = self._bias_corrections(step, beta1, beta2, lr, p.dtype)
            denom = exp_avg_sq.sqrt().div_(_per_row(bc2_sqrt, p)).add_(eps)
            p.sub_(exp_avg.div(denom).mul_(_per_row(step_size, p)))


class RowSparseAdagrad(Optimizer):
    """Adagrad that, for a sparse gradient, updates only the rows present in it.

    ``rowwise=True`` (default) is torchrec / fbgemm's ``EXACT_ROWWISE_ADAGRAD``: one accumulator
    scalar per row, fed with the mean over the row's dims of the squared (coalesced, hence
    "exact") gradient::

        g    = g + weight_decay * w[r]                 # L2 on the rows present
        a[r] = a[r] + mean(g * g)                      # state["sum"], shape (rows,)
        w[r] -= lr * g / (sqrt(a[r]) + eps)

    ``rowwise=False`` keeps one accumulator per element (``torch.optim.Adagrad`` without
    ``lr_decay``, restricted to the rows present). A dense gradient updates every row the same way.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 0.01,
        eps: float = 1e-10,
        initial_accumulator: float = 0.0,
        weight_decay: float = 0.0,
        rowwise: bool = True,
    ):
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if not eps >= 0.0:
            raise ValueError(f"invalid eps: {eps}")
        if not initial_accumulator >= 0.0:
            raise ValueError(f"invalid initial_accumulator: {initial_accumulator}")
        if not weight_decay >= 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        defaults = dict(
            lr=lr, eps=eps, initial_accumulator=initial_accumulator, weight_decay=weight_decay, rowwise=rowwise
        )
        super().__init__(params, defaults)

    def _init_state(self, p: torch.Tensor, group: dict) -> dict:
        state = self.state[p]
        if len(state) == 0:
            init = group["initial_accumulator"]
            if group["rowwise"]:
                state["sum"] = torch.full(_row_count(p), init, dtype=p.dtype, device=p.device)
            else:
                state["sum"] = torch.full_like(p, init, memory_format=torch.contiguous_format)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                acc = self._init_state(p, group)["sum"]
                rowwise = group["rowwise"] and p.dim() >= 2  # else one element per row: the same
                grad = p.grad
                if grad.is_sparse:
                    _check_sparse(p, grad, "RowSparseAdagrad")
                    rows, g = coalesce_rows(grad)
                    if rows.numel() == 0:
                        continue
                    w2 = _as_rows(p)
                    w = w2.index_select(0, rows)
                    if wd != 0:
                        g = g.add(w, alpha=wd)
                    if rowwise:
                        a = acc.view(-1).index_select(0, rows).add_(g.square().mean(1))
                        acc.view(-1).index_copy_(0, rows, a)
                        a = a.unsqueeze(1)
                    else:
                        a2 = _as_rows(acc)
                        a = a2.index_select(0, rows).addcmul_(g, g)
                        a2.index_copy_(0, rows, a)
                    w.sub_(g.div(a.sqrt().add_(eps)).mul_(lr))
                    w2.index_copy_(0, rows, w)
                else:
                    if wd != 0:
                        grad = grad.add(p, alpha=wd)
                    if rowwise:
                        acc.add_(_as_rows(grad).square().mean(1).view(acc.shape))
                        std = _per_row(acc.sqrt().add_(eps), p)
                    else:
                        acc.addcmul_(grad, grad)
                        std = acc.sqrt().add_(eps)
                    p.sub_(grad.div(std).mul_(lr))
        return loss

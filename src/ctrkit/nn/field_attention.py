"""The two batched products of attention over fields, with a fast path for float32 on the CPU.

Attention over the F fields of a CTR model works on B * H tiny matrices (F about 10 to 40, head
size d about 8 to 128). Written as ``q @ k.transpose(-1, -2)`` and ``a @ v`` on (B, H, F, d)
views, every q, k and v is first copied into head-major order, and ``torch.bmm`` then pays a
fixed cost per matrix: on one idle core here it reaches about 7 GFLOPS for 10 x 32 matrices
(large products: about 80), and products and copies took about 40% of an AutoInt training step
on Frappe_x1.

Everything here keeps the layout the projections produce, (B, F, H, d):

    pair_scores(x, y, scale) -> s    s[b,h,i,j] = scale * <x[b,i,h,:], y[b,j,h,:]>   (B, H, Fx, Fy)
    mix(a, y)                -> z    z[b,i,h,:] = sum_j a[b,h,i,j] * y[b,j,h,:]       (B, Fi, H, d)

and the backward of each is made of the same two products:

    pair_scores:  dx = scale * mix(ds, y),        dy = scale * mix(ds^T, x)
    mix:          da = pair_scores(dz, y, 1),     dy = mix(a^T, dz)

For float32 CPU tensors whose last axis is contiguous, both run in ``ctrkit.nn._fieldattn``
(a small C extension built at install; loops over the batch that read every operand in place),
split over ``torch.get_num_threads()`` threads by batch rows. Anything else -- another dtype or
device, tracing or export (TorchScript, ONNX, torch.compile), or an install without the
extension -- takes the same products in PyTorch, with the same results up to float rounding.
``CTRKIT_NATIVE_ATTENTION=0`` forces the PyTorch path.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as nnf
from torch import nn

try:  # built by setup.py when a C compiler is present; optional
    from ctrkit.nn import _fieldattn as _native
except ImportError:  # pragma: no cover - depends on the install
    _native = None

# Below this many batch rows per thread a split costs more than it saves.
_MIN_ROWS_PER_THREAD = 256
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    # A forked child has the pool object but none of its threads: it must make its own.
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def native_available() -> bool:
    """True when the C kernels are built and not switched off (``CTRKIT_NATIVE_ATTENTION=0``)."""
    return _native is not None and os.environ.get("CTRKIT_NATIVE_ATTENTION", "1") != "0"


def kernels() -> str | None:
    """What computes these products for float32 CPU tensors: the kernels' instruction set
    ('avx2+fma' or 'baseline'), or None when PyTorch does (not built, or switched off)."""
    return _native.isa() if native_available() else None  # type: ignore[union-attr]


def _use_native(*tensors: torch.Tensor) -> bool:
    # A traced or compiled graph (TorchScript, ONNX export, torch.compile) cannot see inside the
    # C calls: it gets PyTorch's products.
    if not native_available() or torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    for t in tensors:
        if t.dtype != torch.float32 or t.device.type != "cpu":
            return False
    return True


def _by_rows(kernel: Callable[..., None], args: tuple[Any, ...], batch: int) -> None:
    """Run ``kernel(*args, b0, b1)`` over [0, batch), split into contiguous row ranges, one per thread."""
    global _pool, _pool_size
    threads = min(torch.get_num_threads(), batch // _MIN_ROWS_PER_THREAD)
    if threads <= 1:
        kernel(*args, 0, batch)
        return
    with _pool_lock:
        if _pool is None or _pool_size < threads:
            # A larger pool replaces a smaller one; the old one is not shut down (another thread
            # may be submitting to it) and its idle threads end when it is collected.
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ctrkit-attn")
            _pool_size = threads
        pool = _pool
    bounds = [batch * t // threads for t in range(threads + 1)]
    futures = [pool.submit(kernel, *args, bounds[t], bounds[t + 1]) for t in range(threads)]
    for f in futures:
        f.result()


def _rows(x: torch.Tensor) -> torch.Tensor:
    """x with a contiguous last axis (a copy only when it is not)."""
    return x if x.stride(-1) == 1 else x.contiguous()


def _pair_scores_native(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    B, Fx, H, d = x.shape
    Fy = y.shape[1]
    x, y = _rows(x), _rows(y)
    out = torch.empty(B, H, Fx, Fy, dtype=torch.float32)
    args = (
        x.data_ptr(), x.stride(0), x.stride(1), x.stride(2),
        y.data_ptr(), y.stride(0), y.stride(1), y.stride(2),
        out.data_ptr(), Fx, Fy, H, d, float(scale),
    )  # fmt: skip
    _by_rows(_native.pair_dots, args, B)  # type: ignore[union-attr]
    return out


def _mix_native(a: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """a: (B, H, Fi, Fj) with any strides (a transposed view works); y: (B, Fj, H, d)."""
    B, H, Fi, Fj = a.shape
    d = y.shape[3]
    y = _rows(y)
    out = torch.empty(B, Fi, H, d, dtype=torch.float32)
    args = (
        a.data_ptr(), a.stride(0), a.stride(1), a.stride(2), a.stride(3),
        y.data_ptr(), y.stride(0), y.stride(1), y.stride(2),
        out.data_ptr(), Fi, Fj, H, d, float(scale),
    )  # fmt: skip
    _by_rows(_native.weighted_sum, args, B)  # type: ignore[union-attr]
    return out


def _pair_scores_torch(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    s = x.transpose(1, 2) @ y.permute(0, 2, 3, 1)  # (B, H, Fx, Fy)
    return s * scale if scale != 1.0 else s


def _mix_torch(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (a @ y.transpose(1, 2)).transpose(1, 2)  # (B, Fi, H, d), not contiguous


class _PairScores(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, y)
        ctx.scale = scale
        return _pair_scores_native(x, y, scale)

    @staticmethod
    def backward(ctx, ds: torch.Tensor):  # type: ignore[override]
        x, y = ctx.saved_tensors
        scale = ctx.scale
        dx = _mix_native(ds, y, scale) if ctx.needs_input_grad[0] else None
        dy = _mix_native(ds.transpose(2, 3), x, scale) if ctx.needs_input_grad[1] else None
        return dx, dy, None


class _Mix(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, y)
        return _mix_native(a, y)

    @staticmethod
    def backward(ctx, dz: torch.Tensor):  # type: ignore[override]
        a, y = ctx.saved_tensors
        da = _pair_scores_native(dz, y, 1.0) if ctx.needs_input_grad[0] else None
        dy = _mix_native(a.transpose(2, 3), dz) if ctx.needs_input_grad[1] else None
        return da, dy


def _check(name: str, t: torch.Tensor, dims: int) -> None:
    if t.dim() != dims:
        raise ValueError(f"{name} must have {dims} dimensions, got shape {tuple(t.shape)}")


def pair_scores(x: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Scaled dot products between the fields of x and y, per head.

    x: (B, Fx, H, d), y: (B, Fy, H, d) -> (B, H, Fx, Fy) with
    ``out[b,h,i,j] = scale * <x[b,i,h,:], y[b,j,h,:]>`` (``scale * x_h @ y_h^T`` per head).
    Differentiable in x and y.
    """
    _check("x", x, 4)
    _check("y", y, 4)
    if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise ValueError(f"pair_scores: x {tuple(x.shape)} and y {tuple(y.shape)} differ in batch, heads or head size")
    if _use_native(x, y):
        return _PairScores.apply(x, y, float(scale))
    return _pair_scores_torch(x, y, scale)


def mix(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Weighted sums of y's fields, per head: the ``a @ v`` of attention.

    a: (B, H, Fi, Fj) weights, y: (B, Fj, H, d) -> (B, Fi, H, d) with
    ``out[b,i,h,:] = sum_j a[b,h,i,j] * y[b,j,h,:]``; ``out.flatten(2)`` is the heads concatenated
    (contiguous on the native path). Differentiable in a and y.
    """
    _check("a", a, 4)
    _check("y", y, 4)
    B, H, Fi, Fj = a.shape
    if y.shape[0] != B or y.shape[1] != Fj or y.shape[2] != H:
        raise ValueError(f"mix: weights {tuple(a.shape)} do not fit values {tuple(y.shape)} (B, Fj, H, d)")
    if _use_native(a, y):
        return _Mix.apply(a, y)
    return _mix_torch(a, y)


def project_heads(x: torch.Tensor, layers: Sequence[nn.Linear], num_heads: int, head_dim: int) -> list[torch.Tensor]:
    """x: (B, F, input_dim) -> one (B, F, num_heads, head_dim) per layer (``layer(x)`` split into heads).

    The layers (each ``input_dim -> num_heads * head_dim``, all with or all without bias) run as
    one matrix product on their concatenated weights, and the results are views of its output:
    one GEMM instead of several, and no per-head copies before :func:`pair_scores` and :func:`mix`.
    """
    weight = torch.cat([m.weight for m in layers])  # (n * H * d, input_dim)
    biases = [m.bias for m in layers]
    bias = torch.cat(biases) if biases[0] is not None else None  # type: ignore[arg-type]
    B, F, _ = x.shape
    return list(nnf.linear(x, weight, bias).view(B, F, len(layers), num_heads, head_dim).unbind(2))

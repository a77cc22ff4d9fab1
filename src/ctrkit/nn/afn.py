"""The logarithmic transformation layer of AFN (Adaptive Factorization Network).

Reference: Cheng et al., "Adaptive Factorization Network: Learning Adaptive-Order Feature
Interactions", AAAI 2020, Section 3 (logarithmic neurons); layout as FuxiCTR's
``AFN.logarithmic_net`` in ``model_zoo/AFN/src/AFN.py``.
"""

from __future__ import annotations

import torch
from torch import nn


class LogarithmicTransform(nn.Module):
    """A layer of logarithmic neurons over the field embeddings.

    Neuron j computes, per embedding coordinate k,

        y_j[k] = exp( sum_f w_{j,f} * log|e_f[k]| ) = prod_f |e_f[k]| ^ w_{j,f}

    i.e. a cross feature whose (learned, possibly fractional) order per field is w_{j,f}.

    e: (B, F, D) -> (B, num_neurons * D).

    As in FuxiCTR: |e| is clamped to >= ``eps`` (1e-5; the paper suggests 1e-7) before the log,
    and with ``batch_norm`` a BatchNorm1d over fields follows the log and one over neurons follows
    the exp (the paper's stabilisation). ``weight`` is FuxiCTR's ``coefficient_W``,
    Xavier-normal initialised.
    """

    def __init__(self, num_fields: int, num_neurons: int, *, batch_norm: bool = True, eps: float = 1e-5):
        super().__init__()
        if num_neurons < 1:
            raise ValueError(f"logarithmic_neurons must be >= 1, got {num_neurons}")
        self.eps = eps
        self.coefficient = nn.Linear(num_fields, num_neurons, bias=False)  # w: (L, F)
        nn.init.xavier_normal_(self.coefficient.weight)
        self.log_bn = nn.BatchNorm1d(num_fields) if batch_norm else None
        self.exp_bn = nn.BatchNorm1d(num_neurons) if batch_norm else None
        self.num_neurons = num_neurons

    def forward(self, e: torch.Tensor, *, neuron_major: bool = True) -> torch.Tensor:
        """e: (B, F, D) -> (B, L * D): neuron-major, y_0[0..D), y_1[0..D), ... (FuxiCTR's order);
        with ``neuron_major=False`` coordinate-major, (B, D * L): the same values in (D, L) order,
        the layout the coefficient product produces (no transposing copy in training)."""
        log_e = torch.log(e.abs().clamp_min(self.eps))  # (B, F, D)
        if self.log_bn is not None:
            log_e = self.log_bn(log_e)  # normalises each field over batch and coordinates
        z = self.coefficient(log_e.transpose(1, 2))  # (B, D, L), contiguous
        bn = self.exp_bn
        if (
            bn is not None
            and bn.training
            and bn.affine
            and bn.track_running_stats
            and bn.momentum is not None
            and not torch.jit.is_tracing()
        ):
            # Training: exp and the BatchNorm over neurons fused, in cache-sized blocks (see
            # _ExpBatchNorm); the running statistics are updated as nn.BatchNorm1d does.
            y = _ExpBatchNorm.apply(z, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.momentum, bn.eps)
            bn.num_batches_tracked.add_(1)
            B, D, L = z.shape
            return y.view(B, D * L) if not neuron_major else y.transpose(1, 2).reshape(B, L * D)
        y = torch.exp(z.transpose(1, 2))  # (B, L, D)
        if bn is not None:
            y = bn(y)
        return y.flatten(1) if neuron_major else y.transpose(1, 2).flatten(1)


class _ExpBatchNorm(torch.autograd.Function):
    """BatchNorm1d(exp(z)) over the L neurons in training mode, in z's own (B, D, L) layout.

    z: (B, D, L) contiguous (the coefficient layer's output) -> (B, D, L) contiguous, the values
    of ``bn(torch.exp(z.transpose(1, 2))).transpose(1, 2)``. With BARS's 1000 neurons and batch
    4096 each of these tensors is 164 MB. PyTorch's BatchNorm kernels on a (B, L, D) tensor with
    D = 10 walk it in 10-element runs (about 0.8 s of a 2.3 s training step on one thread), and
    autograd adds whole-tensor passes for exp and its backward. Here the work goes in blocks of a
    few batch rows (a few hundred KB, inside L2): forward reads z once, backward reads the saved
    exp(z) and the incoming gradient twice. The result stays in (B, D, L) order: writing it
    (and reading its gradient) through the (L, D) transpose cost as much again, and the caller
    can take the (D, L) order instead (AFN permutes its next layer's weight columns). Statistics
    are per neuron over B * D values, the variance biased for normalising and unbiased for the
    running estimate, as nn.BatchNorm1d.
    """

    ROWS = 8  # batch rows per block: 8 x 10 x 1000 floats = 320 KB

    @staticmethod
    def forward(ctx, z, weight, bias, running_mean, running_var, momentum, eps):  # type: ignore[override]
        B, D, L = z.shape
        n = B * D
        step = _ExpBatchNorm.ROWS
        y = torch.empty_like(z)  # exp(z), (B, D, L)
        s = z.new_zeros(L)
        for i in range(0, B, step):
            yb = torch.exp(z[i : i + step], out=y[i : i + step]).view(-1, L)
            s.add_(yb.sum(0))
        mean = s / n
        ss = z.new_zeros(L)
        for i in range(0, B, step):
            c = y[i : i + step].view(-1, L) - mean  # centred: the exact two-pass variance
            ss.add_((c * c).sum(0))
        var = ss / n
        rstd = torch.rsqrt(var + eps)
        scale = weight * rstd
        shift = bias - mean * scale
        out = torch.empty_like(z)  # (B, D, L)
        for i in range(0, B, step):
            torch.addcmul(shift, y[i : i + step], scale, out=out[i : i + step])
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * (n / max(n - 1, 1)), alpha=momentum)
        ctx.save_for_backward(y, weight, mean, rstd)
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        y, weight, mean, rstd = ctx.saved_tensors
        B, D, L = y.shape
        n = B * D
        step = _ExpBatchNorm.ROWS
        g_t = g.contiguous()  # (B, D, L), matching y
        sum_g = y.new_zeros(L)
        sum_gy = y.new_zeros(L)
        for i in range(0, B, step):
            gb = g_t[i : i + step].reshape(-1, L)
            sum_g.add_(gb.sum(0))
            sum_gy.add_((gb * y[i : i + step].view(-1, L)).sum(0))
        sum_gxhat = rstd * (sum_gy - mean * sum_g)  # sum of g * xhat, xhat = (y - mean) * rstd
        # d(out)/d(y) in closed form: w * rstd * (g - mean(g) - xhat * mean(g * xhat)), written
        # as a*g + b*y + c per neuron; the exp's backward multiplies by y.
        a = weight * rstd
        b = -a * rstd * sum_gxhat / n
        c = -a * sum_g / n - b * mean
        dz = torch.empty_like(y)
        for i in range(0, B, step):
            yb = y[i : i + step]
            t = torch.addcmul(c, g_t[i : i + step], a)
            t.addcmul_(yb, b)
            torch.mul(t, yb, out=dz[i : i + step])
        return dz, sum_gxhat, sum_g, None, None, None, None

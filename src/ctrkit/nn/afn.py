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
        x = log_e.transpose(1, 2)  # (B, D, F)
        bn = self.exp_bn
        if (
            bn is not None
            and bn.training
            and bn.affine
            and bn.track_running_stats
            and bn.momentum is not None
            and not torch.jit.is_tracing()
        ):
            # Training: the coefficient product, the exp and the BatchNorm over neurons fused, in
            # cache-sized blocks (see _LinearExpBatchNorm); the running statistics are updated as
            # nn.BatchNorm1d does.
            y = _LinearExpBatchNorm.apply(
                x.contiguous(), self.coefficient.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.momentum, bn.eps
            )
            bn.num_batches_tracked.add_(1)
            B, D, L = y.shape
            return y.view(B, D * L) if not neuron_major else y.transpose(1, 2).reshape(B, L * D)
        y = torch.exp(self.coefficient(x).transpose(1, 2))  # (B, L, D)
        if bn is not None:
            y = bn(y)
        return y.flatten(1) if neuron_major else y.transpose(1, 2).flatten(1)


class _LinearExpBatchNorm(torch.autograd.Function):
    """BatchNorm1d(exp(x @ W^T)) over the L neurons in training mode, in the product's own layout.

    x: (B, D, F) contiguous, W: (L, F) -> (B, D, L) contiguous, the values of
    ``bn(torch.exp((x @ W.T).transpose(1, 2))).transpose(1, 2)``. With BARS's 1000 neurons and
    batch 4096 the (B, D, L) tensors are 164 MB each, and the product has only F (10) terms, so
    every step here is bound by memory traffic, not arithmetic. Done one op at a time, the
    product writes z, exp reads it and writes exp(z), and backward writes dz and reads it twice
    more for the gradients of x and W; PyTorch's BatchNorm kernels on a (B, L, D) tensor with
    D = 10 also walk it in 10-element runs. Here the work goes in blocks of a few batch rows (a
    few hundred KB, inside L2): forward computes each block's product and exp in cache and keeps
    exp(z), which backward needs; backward reads it and the incoming gradient twice and forms dz
    a block at a time, never whole. Measured on one thread, batch 4096, 1000 neurons, against
    the product as its own op: forward plus backward of the logarithmic layer 360 -> 255 ms, and
    two 164 MB tensors fewer at the peak.
    The result stays in (B, D, L) order: writing it (and reading its gradient) through the
    (L, D) transpose cost as much again, and the caller can take the (D, L) order instead (AFN
    permutes its next layer's weight columns). Statistics are per neuron over B * D values, the
    variance biased for normalising and unbiased for the running estimate, as nn.BatchNorm1d.
    """

    ROWS = 8  # batch rows per block: 8 x 10 x 1000 floats = 320 KB

    @staticmethod
    def forward(ctx, x, coef, weight, bias, running_mean, running_var, momentum, eps):  # type: ignore[override]
        B, D, F = x.shape
        L = coef.shape[0]
        n = B * D
        rows = _LinearExpBatchNorm.ROWS * D
        xf = x.view(n, F)
        wt = coef.t()  # (F, L)
        y = x.new_empty(n, L)  # exp(x @ W^T)
        s = x.new_zeros(L)
        for i in range(0, n, rows):
            yb = torch.mm(xf[i : i + rows], wt, out=y[i : i + rows])
            s.add_(yb.exp_().sum(0))
        mean = s / n
        ss = x.new_zeros(L)
        for i in range(0, n, rows):
            c = y[i : i + rows] - mean  # centred: the exact two-pass variance
            ss.add_((c * c).sum(0))
        var = ss / n
        rstd = torch.rsqrt(var + eps)
        scale = weight * rstd
        shift = bias - mean * scale
        out = torch.empty_like(y)
        for i in range(0, n, rows):
            torch.addcmul(shift, y[i : i + rows], scale, out=out[i : i + rows])
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * (n / max(n - 1, 1)), alpha=momentum)
        ctx.save_for_backward(x, coef, y, weight, mean, rstd)
        return out.view(B, D, L)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, coef, y, weight, mean, rstd = ctx.saved_tensors
        B, D, F = x.shape
        n, L = y.shape
        rows = _LinearExpBatchNorm.ROWS * D
        gf = g.contiguous().view(n, L)  # matching y
        sum_g = y.new_zeros(L)
        sum_gy = y.new_zeros(L)
        for i in range(0, n, rows):
            gb = gf[i : i + rows]
            sum_g.add_(gb.sum(0))
            sum_gy.add_((gb * y[i : i + rows]).sum(0))
        sum_gxhat = rstd * (sum_gy - mean * sum_g)  # sum of g * xhat, xhat = (y - mean) * rstd
        # d(out)/d(y) in closed form: w * rstd * (g - mean(g) - xhat * mean(g * xhat)), written
        # as a*g + b*y + c per neuron; the exp's backward multiplies by y.
        a = weight * rstd
        b = -a * rstd * sum_gxhat / n
        c = -a * sum_g / n - b * mean
        xf = x.view(n, F)
        dx = torch.empty_like(xf)
        # W's gradient is summed transposed, (F, L): the small products take half the time
        # that way round (15 against 30 us a block here).
        dcoef_t = coef.new_zeros(F, L)
        for i in range(0, n, rows):
            yb = y[i : i + rows]
            dz = torch.addcmul(c, gf[i : i + rows], a)  # (rows, L), in cache
            dz.addcmul_(yb, b).mul_(yb)
            torch.mm(dz, coef, out=dx[i : i + rows])
            dcoef_t.addmm_(xf[i : i + rows].t(), dz)
        return dx.view(B, D, F), dcoef_t.t().contiguous(), sum_gxhat, sum_g, None, None, None, None

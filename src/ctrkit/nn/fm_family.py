"""Interaction layers of the factorization-machine family beyond plain FM.

Every layer takes field embeddings ``e`` of shape (B, F, D) (from
:class:`ctrkit.nn.embedding.FeatureEmbedding`). Plain FM's pairwise term and the bi-interaction
vector live in :mod:`ctrkit.nn.interactions`; the inner product of every pair is
:class:`ctrkit.nn.interactions.InnerProductPairs`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ctrkit.nn.dropout import FastDropout


class PairwiseProducts(nn.Module):
    """The element-wise product of every field pair: e (B, F, D) -> (B, F*(F-1)/2, D).

    Pairs (i, j), i < j, in row-major ``torch.triu_indices`` order, the order of FuxiCTR's
    ``InnerProductInteraction(output="elementwise_product")`` (AFM's pair-wise interaction layer).
    """

    def __init__(self, num_fields: int):
        super().__init__()
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    @property
    def num_pairs(self) -> int:
        return int(self.rows.numel())

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return e[:, self.rows] * e[:, self.cols]


def elementary_symmetric(e: torch.Tensor, order: int) -> list[torch.Tensor]:
    """Elementary symmetric polynomials of the fields, per embedding coordinate.

    e: (B, F, D) -> [E_0, ..., E_order], each (B, D), where
    E_t[b, d] = sum over all t-subsets {f_1 < ... < f_t} of prod_k e[b, f_k, d].

    Computed from power sums P_k = sum_f e_f^k by Newton's identities,
    E_t = (1/t) sum_{k=1..t} (-1)^(k-1) E_{t-k} P_k: O(order * F * D) work with no loop over
    fields or subsets (Blondel et al., NIPS 2016, Sec. 3 compute the same ANOVA kernel with a
    dynamic programme; Rendle's FM trick is the case t = 2). Orders are small (2 to 4), where the
    alternating sum is numerically benign.
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    B, _, D = e.shape
    powers = [None] + [e.pow(k).sum(dim=1) for k in range(1, order + 1)]  # P_k: (B, D)
    out = [e.new_ones(B, D)]
    for t in range(1, order + 1):
        acc = torch.zeros_like(out[0])
        for k in range(1, t + 1):
            term = out[t - k] * powers[k]
            acc = acc + term if k % 2 == 1 else acc - term
        out.append(acc / t)
    return out


def anova_kernel(e: torch.Tensor, order: int) -> torch.Tensor:
    """HOFM's order-t term: sum over all t-subsets of fields of sum_d prod_k e[f_k, d].

    e: (B, F, D) -> (B,). Order 2 is FM's pairwise term sum_{i<j} <e_i, e_j>.
    """
    return elementary_symmetric(e, order)[order].sum(dim=-1)


class FieldMatrixedInteraction(nn.Module):
    """FmFM's pairwise term: sum_{i<j} <e_i M_{ij}, e_j>, one learned transform per field pair.

    ``kind="matrixed"``: M_{ij} is a (D, D) matrix; ``kind="vectorized"``: a diagonal matrix
    stored as a (D,) vector (FwFM is the special case of a scalar multiple of the identity).
    Weights are Xavier-normal, as FuxiCTR's ``FmFM`` initialises them.

    The pairs are not gathered: the per-pair matrices (diagonal ones for "vectorized") are placed
    into a block strictly upper-triangular (F*D, F*D) matrix W, and the term is one quadratic form
    per row, x^T W x with x the flattened (F*D,) embeddings: one GEMM. Gathering (B, P, D) copies
    and scattering their gradients back cost several times more.

    e: (B, F, D) -> (B,).
    """

    def __init__(self, num_fields: int, dim: int, kind: Literal["matrixed", "vectorized"] = "matrixed"):
        super().__init__()
        if kind not in ("matrixed", "vectorized"):
            raise ValueError(f"field_interaction_type must be 'matrixed' or 'vectorized', got {kind!r}")
        self.kind = kind
        self.pairs = PairwiseProducts(num_fields)  # for its index buffers
        P = self.pairs.num_pairs
        shape = (P, dim, dim) if kind == "matrixed" else (P, dim)
        self.weight = nn.Parameter(torch.empty(shape))
        nn.init.xavier_normal_(self.weight)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        B, F, D = e.shape
        blocks = torch.diag_embed(self.weight) if self.kind == "vectorized" else self.weight  # (P, D, D)
        # W: (F, D, F, D) with block (i, j) = M_ij for i < j, as one (F*D, F*D) matrix.
        w = blocks.new_zeros(F, F, D, D).index_put((self.pairs.rows, self.pairs.cols), blocks)
        w = w.permute(0, 2, 1, 3).reshape(F * D, F * D)
        x = e.reshape(B, F * D)
        return (torch.mm(x, w) * x).sum(dim=1)


class AttentionalPooling(nn.Module):
    """AFM's attention-based pooling of pair-wise interaction vectors.

    x: (B, P, D) element-wise products -> (B,):
        a = softmax_p(h^T ReLU(W x_p + b))      (B, P), attention over pairs
        s = sum_p a_p x_p                       (B, D)
        out = p^T s                             (B,)
    with dropout on the attention weights and on ``s`` (FuxiCTR's ``attention_dropout`` pair;
    the paper applies dropout on the pooled vector only).
    """

    def __init__(self, dim: int, attention_dim: int, dropout: tuple[float, float] = (0.0, 0.0)):
        super().__init__()
        self.attention = nn.Linear(dim, attention_dim)
        self.h = nn.Linear(attention_dim, 1, bias=False)
        self.p = nn.Linear(dim, 1, bias=False)
        self.dropout_weights = FastDropout(dropout[0]) if dropout[0] > 0 else None
        self.dropout_pooled = FastDropout(dropout[1]) if dropout[1] > 0 else None
        for m in (self.attention, self.h, self.p):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, P, D) -> (B, P) attention weights; each row sums to one."""
        if torch.is_grad_enabled() and not torch.jit.is_tracing():
            B, P, D = x.shape
            scores = _PairAttentionScores.apply(
                x.reshape(B * P, D), self.attention.weight, self.attention.bias, self.h.weight.view(-1)
            ).view(B, P)
        else:
            # Inference and export (TorchScript / ONNX cannot take a Python autograd Function):
            # plain ops, the same values.
            scores = self.h(torch.relu(self.attention(x))).squeeze(-1)
        return torch.softmax(scores, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.weights(x)
        if self.dropout_weights is not None:
            a = self.dropout_weights(a)
        s = (a.unsqueeze(-1) * x).sum(dim=1)  # (B, D)
        if self.dropout_pooled is not None:
            s = self.dropout_pooled(s)
        return self.p(s).squeeze(-1)


class _PairAttentionScores(torch.autograd.Function):
    """AFM's attention scores h^T ReLU(W x_n + b) for N rows, computed in blocks of rows.

    x: (N, D), W: (A, D), b: (A,), h: (A,) -> (N,). With Frappe's 45 pairs, batch 4096 and A=128
    the hidden layer is (184,320 x 128): autograd keeps it and makes four more passes of that size
    (ReLU, its mask, the product with h and its backward), all memory-bound, and the (N, 128) x
    (128, 1) product is a matrix-vector product the GEMM kernels handle poorly; that was ~0.8 s of
    a training step on one thread. Here each block of rows is small enough to stay in cache:
    forward keeps only the (N,) scores, backward recomputes the block's hidden layer (a K=D
    product, cheap) and accumulates dW, db, dh block by block.
    """

    BLOCK = 2048  # rows per block: 2048 x 128 floats = 1 MiB

    @staticmethod
    def forward(ctx, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n = x.shape[0]
        out = x.new_empty(n)
        for i in range(0, n, _PairAttentionScores.BLOCK):
            z = torch.addmm(b, x[i : i + _PairAttentionScores.BLOCK], W.t()).clamp_min_(0)
            torch.mv(z, h, out=out[i : i + _PairAttentionScores.BLOCK])
        ctx.save_for_backward(x, W, b, h)
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        x, W, b, h = ctx.saved_tensors
        need_x, need_W, need_b, need_h = ctx.needs_input_grad
        dx = torch.empty_like(x) if need_x else None
        # dW is accumulated transposed, (D, A) += x_b^T dz_b, and dx_b is formed as (W^T dz_b^T)^T:
        # with D = 10 the direct forms are GEMMs with a 10-wide output, 4-7x slower on CPU.
        dWt = W.new_zeros(W.shape[1], W.shape[0])
        db = torch.zeros_like(b)
        dh = torch.zeros_like(h)
        Wt = W.t()
        for i in range(0, x.shape[0], _PairAttentionScores.BLOCK):
            xb, gb = x[i : i + _PairAttentionScores.BLOCK], g[i : i + _PairAttentionScores.BLOCK]
            r = torch.addmm(b, xb, Wt).clamp_min_(0)  # (n, A) hidden layer
            dh.addmv_(r.t(), gb)  # dh += r^T g
            # d score / d pre-activation: g h^T where the unit is active (r > 0 iff z > 0)
            dz = torch.ops.aten.threshold_backward(torch.outer(gb, h), r, 0)
            dWt.addmm_(xb.t(), dz)
            db.add_(dz.sum(0))
            if dx is not None:
                dx[i : i + _PairAttentionScores.BLOCK].copy_(torch.mm(Wt, dz.t()).t())
        return dx, dWt.t() if need_W else None, db if need_b else None, dh if need_h else None


def lorentz_triangle_pooling(e: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """LorentzFM's score: sum over field pairs of the triangle-inequality score in hyperbolic space.

    e: (B, F, D) points' spatial coordinates; the time coordinate is u0 = sqrt(1 + |u|^2) (the
    hyperboloid with beta = 1). For a pair (u, v), with Lorentz inner product
    <u, v>_L = <u, v> - u0 v0,
        T(u, v) = (1 - <u, v>_L - u0 - v0) / (u0 v0) = 1 + (1 - <u, v> - u0 - v0) / (u0 v0)
    (Xu et al., AAAI 2020, Eq. 7-9; FuxiCTR's ``triangle_pooling``). Returns (B,), the sum of
    T over the pairs ``(rows[k], cols[k])``.
    """
    u0 = torch.sqrt(e.pow(2).sum(dim=-1) + 1.0)  # (B, F)
    inner = (e[:, rows] * e[:, cols]).sum(dim=-1)  # (B, P)
    a, b = u0[:, rows], u0[:, cols]
    return (1.0 + (1.0 - inner - a - b) / (a * b)).sum(dim=1)

"""InterHAt's layers: a transformer encoder over fields and hierarchical attentional aggregation.

Reference: Li et al., "Interpretable Click-Through Rate Prediction through Hierarchical
Attention" (InterHAt, WSDM 2020), Section 3. Details as FuxiCTR's ``MultiHeadSelfAttention``,
``FeedForwardNetwork`` and ``AttentionalAggregation`` in ``model_zoo/InterHAt/src/InterHAt.py``.
The query/key/value projections and the softmax weights are those of the shared
:class:`ctrkit.nn.attention.MultiHeadSelfAttention` (scaled); only the transformer-style output
(ReLU projection back to the input size, dropout, residual, LayerNorm) is new here.
"""

from __future__ import annotations

import torch
from torch import nn

from ctrkit.nn.attention import MultiHeadSelfAttention
from ctrkit.nn.dropout import FastDropout


class TransformerSelfAttention(nn.Module):
    """x: (B, F, D) -> (B, F, D).

    heads = softmax(q k^T / sqrt(d)) v per head (d = ``attention_dim`` per head, as FuxiCTR's
    InterHAt), concatenated to (B, F, H*d); then
    out = LN(x + dropout(ReLU(heads [W_o]))), W_o: (H*d, D) only when H*d != D.
    """

    def __init__(
        self,
        input_dim: int,
        attention_dim: int | None = None,
        num_heads: int = 1,
        *,
        dropout: float = 0.0,
        use_residual: bool = True,
        layer_norm: bool = True,
    ):
        super().__init__()
        attention_dim = attention_dim or input_dim // num_heads
        out_dim = attention_dim * num_heads
        # The shared layer supplies W_q, W_k, W_v, the per-head split, the scaled softmax and the
        # dropout on the weights; its own residual/ReLU output path is not used here.
        self.attention = MultiHeadSelfAttention(
            input_dim, out_dim, num_heads=num_heads, dropout=dropout, use_residual=False, use_scale=True
        )
        self.w_o = nn.Linear(out_dim, input_dim, bias=False) if out_dim != input_dim else None
        self.dropout = FastDropout(dropout) if dropout > 0 else None
        self.use_residual = use_residual
        self.norm = nn.LayerNorm(input_dim) if layer_norm else None

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention.attention_weights(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.attention.attend(x)  # (B, F, H*d)
        if self.w_o is not None:
            out = self.w_o(out)
        out = out.relu()
        if self.dropout is not None:
            out = self.dropout(out)
        if self.use_residual:
            out = out + x
        return self.norm(out) if self.norm is not None else out


class FeedForward(nn.Module):
    """x: (..., D) -> (..., D): LN(x + W_2 ReLU(W_1 x + b_1) + b_2), hidden size 4D by default."""

    def __init__(self, input_dim: int, hidden_dim: int | None = None, *, layer_norm: bool = True, use_residual: bool = True):
        super().__init__()
        hidden_dim = hidden_dim or 4 * input_dim
        self.ffn = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, input_dim))
        self.use_residual = use_residual
        self.norm = nn.LayerNorm(input_dim) if layer_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ffn(x)
        if self.use_residual:
            out = out + x
        return self.norm(out) if self.norm is not None else out


class AttentionalAggregation(nn.Module):
    """x: (B, N, D) -> (B, D): sum_n a_n x_n, a = softmax_n(w^T ReLU(W x_n + b)) (no bias on w)."""

    def __init__(self, embedding_dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or 4 * embedding_dim
        self.score = nn.Sequential(nn.Linear(embedding_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1, bias=False))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, 1), a distribution over the N rows."""
        return torch.softmax(self.score(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights(x) * x).sum(dim=1)

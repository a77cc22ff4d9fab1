"""DESTINE's disentangled self-attention over fields: a whitened pairwise term plus a unary term.

Reference: Xu et al., "Disentangled Self-Attentive Neural Networks for Click-Through Rate
Prediction" (DESTINE, CIKM 2021, arXiv:2101.03654), Section 3. Details as FuxiCTR's
``DisentangledSelfAttention`` in ``model_zoo/DESTINE/src/DESTINE.py`` (which follows the authors'
code).
"""

from __future__ import annotations

import torch
from torch import nn

from ctrkit.nn.dropout import FastDropout
from ctrkit.nn.field_attention import mix, pair_scores, project_heads
from ctrkit.nn.softmax import softmax_last


class DisentangledSelfAttention(nn.Module):
    """x: (B, F, input_dim) -> (B, F, attention_dim).

    Per head h (head size d = attention_dim / num_heads), with q, k, v = x W_q, x W_k, x W_v (+bias):
        pair_ij  = softmax_j(<q_i - mean_f q_f, k_j - mean_f k_f> [/ sqrt(d)])   whitened pairwise
        unary_j  = softmax_j(x_j w_u^h + b_u^h)                                   field salience
        out_i    = sum_j (pair_ij + unary_j) v_j
    Heads are concatenated; with ``use_residual`` the projection x W_res (+bias) is added.
    Each of the two weight terms is a distribution over key fields (rows sum to one).
    """

    def __init__(
        self,
        input_dim: int,
        attention_dim: int = 64,
        num_heads: int = 1,
        *,
        dropout: float = 0.1,
        use_residual: bool = True,
        use_scale: bool = False,
        relu_before_att: bool = False,
    ):
        super().__init__()
        if attention_dim % num_heads != 0:
            raise ValueError(f"attention_dim={attention_dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = attention_dim // num_heads
        self.use_scale = use_scale
        self.relu_before_att = relu_before_att
        self.w_q = nn.Linear(input_dim, attention_dim)
        self.w_k = nn.Linear(input_dim, attention_dim)
        self.w_v = nn.Linear(input_dim, attention_dim)
        self.w_unary = nn.Linear(input_dim, num_heads)
        self.w_res = nn.Linear(input_dim, attention_dim) if use_residual else None
        self.dropout = FastDropout(dropout) if dropout > 0 else None
        self.output_dim = attention_dim

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """x -> q, k, v (each (B, F, H, d)) and x W_res + b_res ((B, F, attention_dim)) or None."""
        layers = [self.w_q, self.w_k, self.w_v] + ([self.w_res] if self.w_res is not None else [])
        parts = project_heads(x, layers, self.num_heads, self.head_dim)
        q, k, v = parts[:3]
        if self.relu_before_att:
            q, k, v = q.relu(), k.relu(), v.relu()
        return q, k, v, (parts[3].flatten(2) if len(parts) > 3 else None)

    def attention_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> (pair (B, H, F, F), unary (B, H, 1, F)); rows of each sum to one."""
        q, k, _, _ = self._project(x)
        return self._weights(x, q, k)

    def _weights(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = q - q.mean(dim=1, keepdim=True)  # whiten over fields; q, k: (B, F, H, d)
        k = k - k.mean(dim=1, keepdim=True)
        pair = softmax_last(pair_scores(q, k, self.head_dim**-0.5 if self.use_scale else 1.0))
        unary = torch.softmax(self.w_unary(x), dim=1).transpose(1, 2).unsqueeze(2)  # (B, H, 1, F)
        return pair, unary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, F, _ = x.shape
        q, k, v, res = self._project(x)
        pair, unary = self._weights(x, q, k)
        a = pair + unary
        if self.dropout is not None:
            a = self.dropout(a)
        out = mix(a, v).reshape(B, F, -1)  # (B, F, attention_dim), heads concatenated
        if res is not None:
            out = out + res
        return out

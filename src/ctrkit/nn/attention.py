"""Multi-head self-attention over fields with a residual connection (AutoInt's interacting layer).

Reference: Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive Neural
Networks", CIKM 2019 (the Interacting Layer section); details as FuxiCTR's
``MultiHeadSelfAttention`` in ``model_zoo/AutoInt/src/AutoInt.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from ctrkit.nn.dropout import FastDropout
from ctrkit.nn.field_attention import mix, pair_scores, project_heads
from ctrkit.nn.softmax import softmax_last


class MultiHeadSelfAttention(nn.Module):
    """Every field attends to every field (itself included) in ``num_heads`` subspaces.

    x: (B, F, input_dim) -> (B, F, attention_dim).

    Per head h, with head size d = attention_dim / num_heads:
        q, k, v = x W_q^h, x W_k^h, x W_v^h                 (B, F, d)
        a = softmax_j(<q_i, k_j> [/ sqrt(d) if use_scale])   (B, F, F), rows sum to one
        out_h = a v                                          (B, F, d)
    Heads are concatenated, the residual ``x W_res`` (``x`` itself when the sizes agree) is
    added, then optional LayerNorm and ReLU.

    The paper uses the raw inner product (no scaling) and always a residual; FuxiCTR makes both
    switchable (``use_scale``, ``use_residual``) and adds optional ``layer_norm`` and dropout on
    the attention weights. Defaults here follow FuxiCTR's AutoInt.
    """

    def __init__(
        self,
        input_dim: int,
        attention_dim: int,
        *,
        num_heads: int = 1,
        dropout: float = 0.0,
        use_residual: bool = True,
        use_scale: bool = False,
        layer_norm: bool = False,
    ):
        super().__init__()
        if attention_dim % num_heads != 0:
            raise ValueError(f"attention_dim={attention_dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = attention_dim // num_heads
        self.scale = self.head_dim**-0.5 if use_scale else 1.0
        self.w_q = nn.Linear(input_dim, attention_dim, bias=False)
        self.w_k = nn.Linear(input_dim, attention_dim, bias=False)
        self.w_v = nn.Linear(input_dim, attention_dim, bias=False)
        self.use_residual = use_residual
        # The residual needs a projection only when it changes size.
        self.w_res = (
            nn.Linear(input_dim, attention_dim, bias=False)
            if use_residual and input_dim != attention_dim
            else None
        )
        self.dropout = FastDropout(dropout) if dropout > 0 else None
        self.norm = nn.LayerNorm(attention_dim) if layer_norm else None
        self.output_dim = attention_dim

    def project(self, x: torch.Tensor, *, residual: bool = False) -> list[torch.Tensor]:
        """x: (B, F, input_dim) -> [q, k, v] (+ [x W_res] with ``residual``), each (B, F, H, d)."""
        layers = [self.w_q, self.w_k, self.w_v]
        if residual and self.w_res is not None:
            layers.append(self.w_res)
        return project_heads(x, layers, self.num_heads, self.head_dim)

    def _weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return softmax_last(pair_scores(q, k, self.scale))  # (B, H, F, F)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, F, input_dim) -> (B, num_heads, F, F); each row is a distribution over fields."""
        q, k, _ = self.project(x)
        return self._weights(q, k)

    def attend(self, x: torch.Tensor, *, residual: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, F, input_dim) -> (the heads concatenated, (B, F, attention_dim); with ``residual``
        and a residual projection, x W_res (B, F, attention_dim), else None). Dropout on the
        weights in training; no residual sum, norm or activation (callers differ there)."""
        q, k, v, *res = self.project(x, residual=residual)
        a = self._weights(q, k)
        if self.dropout is not None:
            a = self.dropout(a)
        B, F, _ = x.shape
        return mix(a, v).reshape(B, F, -1), (res[0].reshape(B, F, -1) if res else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, res = self.attend(x, residual=self.use_residual)
        if self.use_residual:
            out = out + (res if res is not None else x)
        if self.norm is not None:
            out = self.norm(out)
        return torch.relu(out)

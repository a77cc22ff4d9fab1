"""A post-norm Transformer encoder layer with key padding mask (BST's transformer layer).

Reference: Chen et al., "Behavior Sequence Transformer for E-commerce Recommendation in Alibaba",
DLP-KDD 2019, Sec. 2.3 (eqs. 4-6)::

    S' = LayerNorm(S + Dropout(MH(S)))
    F  = LayerNorm(S' + Dropout(LeakyReLU(S' W1 + b1) W2 + b2))

with MH the multi-head scaled dot-product self-attention of Vaswani et al. (2017).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ctrkit.errors import ConfigError
from ctrkit.nn.dropout import FastDropout


class TransformerLayer(nn.Module):
    """x: (B, T, D), mask: (B, T) bool (True on real tokens) -> (B, T, D).

    Padded tokens are masked as *keys*, so they cannot change any real token's output; their own
    outputs are computed (and finite, as long as each row has one real token) but meaningless.
    """

    def __init__(self, dim: int, num_heads: int = 1, ff_dim: int | None = None, dropout: float = 0.0,
                 attention_dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"width {dim} is not divisible by num_heads={num_heads}")
        self.h, self.d = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        ff_dim = ff_dim or 4 * dim
        self.ff1 = nn.Linear(dim, ff_dim)
        self.ff2 = nn.Linear(ff_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = FastDropout(dropout) if dropout > 0 else nn.Identity()
        self.attention_dropout = attention_dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, self.d).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, d)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[:, None, None, :],
            dropout_p=self.attention_dropout if self.training else 0.0,
        )  # (B, H, T, d)
        x = self.norm1(x + self.dropout(self.out(a.transpose(1, 2).reshape(B, T, D))))
        f = self.ff2(F.leaky_relu(self.ff1(x)))
        return self.norm2(x + self.dropout(f))

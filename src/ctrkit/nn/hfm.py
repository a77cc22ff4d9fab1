"""Holographic interactions of HFM: every field pair compressed by circular convolution/correlation.

Reference: Tay et al., "Holographic Factorization Machines for Recommendation", AAAI 2019
(Section 3: holographic reduced representations). Details as FuxiCTR's
``HolographicInteraction`` in ``fuxictr/pytorch/layers/interactions/holographic_interaction.py``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

HolographicType = Literal["hadamard_product", "circular_convolution", "circular_correlation"]


def circular_convolution(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(a * b)_k = sum_j a_j b_{(k - j) mod D} over the last dimension, via the real FFT."""
    D = a.shape[-1]
    if torch.jit.is_tracing():
        return _circulant(a, b, -1)
    return torch.fft.irfft(torch.fft.rfft(a) * torch.fft.rfft(b), n=D)


def circular_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(a # b)_k = sum_j a_j b_{(k + j) mod D} over the last dimension, via the real FFT."""
    D = a.shape[-1]
    if torch.jit.is_tracing():
        return _circulant(a, b, 1)
    return torch.fft.irfft(torch.conj(torch.fft.rfft(a)) * torch.fft.rfft(b), n=D)


def _circulant(a: torch.Tensor, b: torch.Tensor, sign: int) -> torch.Tensor:
    """sum_j a_j b_{(k + sign * j) mod D} by gathering b into a (D, D) circulant: the form traced
    for export (ONNX has no FFT operator). O(D^2) per vector against the FFT's O(D log D), which
    at embedding sizes of 10-16 costs little; same values up to rounding."""
    D = int(a.shape[-1])
    k = np.arange(D)
    idx = torch.from_numpy((k[:, None] + sign * k[None, :]) % D).to(b.device)  # (D, D), constant
    return (b[..., idx] * a.unsqueeze(-2)).sum(-1)


class HolographicInteraction(nn.Module):
    """e: (B, F, D) -> (B, F*(F-1)/2, D): one D-vector per field pair (i < j, row-major order).

    ``hadamard_product``: e_i * e_j (FM's pairwise vector); ``circular_convolution``: e_i * e_j
    in the circular-convolution sense; ``circular_correlation``: e_i # e_j (the paper's choice,
    non-commutative). Parameter-free.
    """

    def __init__(self, num_fields: int, interaction_type: HolographicType = "circular_convolution"):
        super().__init__()
        if interaction_type not in ("hadamard_product", "circular_convolution", "circular_correlation"):
            raise ValueError(f"unknown interaction_type '{interaction_type}'")
        self.interaction_type = interaction_type
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    @property
    def num_pairs(self) -> int:
        return int(self.rows.numel())

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        e1, e2 = e[:, self.rows], e[:, self.cols]
        if self.interaction_type == "hadamard_product":
            return e1 * e2
        if self.interaction_type == "circular_convolution":
            return circular_convolution(e1, e2)
        return circular_correlation(e1, e2)

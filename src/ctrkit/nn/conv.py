"""Convolution over the field axis of field embeddings (CCPM).

Reference: Liu et al., "A Convolutional Click Prediction Model", CIKM 2015: wide 1-D convolutions
along the field axis (each embedding coordinate is a separate "row"), flexible p-max pooling and
tanh, stacked; layout as FuxiCTR's ``CCPM_ConvLayer`` (``model_zoo/CCPM/src/CCPM.py``) and
``KMaxPooling`` (``fuxictr/pytorch/layers/pooling.py``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ctrkit.nn.mlp import activation


class KMaxPooling(nn.Module):
    """Keep the k largest entries along ``dim``, in their original order (Kalchbrenner et al.,
    ACL 2014). x: (..., L, ...) -> (..., k, ...)."""

    def __init__(self, k: int, dim: int):
        super().__init__()
        self.k = k
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = x.topk(self.k, dim=self.dim).indices.sort(dim=self.dim).values
        return x.gather(self.dim, index)

    def extra_repr(self) -> str:
        return f"k={self.k}, dim={self.dim}"


def ccpm_pool_sizes(num_fields: int, num_layers: int) -> list[int]:
    """CCPM's flexible p-max pooling sizes: k_i = max(3, int((1 - (i/l)^(l-i)) * F)) for layers
    i < l, and 3 for the last layer (paper Eq. 5, with FuxiCTR's floor of 3)."""
    sizes = []
    for i in range(1, num_layers + 1):
        if i < num_layers:
            sizes.append(max(3, int((1 - pow(i / num_layers, num_layers - i)) * num_fields)))
        else:
            sizes.append(3)
    return sizes


class CCPMConv(nn.Module):
    """Stacked wide convolutions over fields.

    x: (B, F, D) -> (B, channels[-1], 3, D).

    Layer i: zero-pad the field axis by k_i - 1 on both sides (a "wide" convolution), Conv2d with
    kernel (k_i, 1) from channels[i-1] to channels[i] maps (one input map to start), order-keeping
    k-max pooling over the field axis (:func:`ccpm_pool_sizes`), then the activation.
    """

    def __init__(
        self,
        num_fields: int,
        channels: Sequence[int],
        kernel_heights: Sequence[int],
        activation_name: str = "tanh",
    ):
        super().__init__()
        if not channels:
            raise ValueError("CCPM needs at least one convolution layer (channels is empty)")
        if len(kernel_heights) != len(channels):
            raise ValueError(
                f"channels={list(channels)} and kernel_heights={list(kernel_heights)} must have the same length"
            )
        pools = ccpm_pool_sizes(num_fields, len(channels))
        layers: list[nn.Module] = []
        height, c_in = num_fields, 1
        for c_out, kh, k in zip(channels, kernel_heights, pools):
            height = height + kh - 1  # wide convolution: pad k-1 each side, valid conv
            if height < k:
                raise ValueError(
                    f"CCPM: a layer's output has {height} rows along the field axis, fewer than "
                    f"its k-max pooling size {k} (num_fields={num_fields}); use taller kernels"
                )
            layers += [
                nn.ZeroPad2d((0, 0, kh - 1, kh - 1)),
                nn.Conv2d(c_in, c_out, kernel_size=(kh, 1)),
                KMaxPooling(k, dim=2),
                activation(activation_name),
            ]
            height, c_in = k, c_out
        self.net = nn.Sequential(*layers)
        self.out_channels = c_in
        self.out_height = height

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))

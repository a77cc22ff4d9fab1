"""FGCNN's feature generation: convolution + pooling + recombination over field embeddings.

Reference: Liu et al., "Feature Generation by Convolutional Neural Network for Click-Through Rate
Prediction", WWW 2019 (the Feature Generation section); layout as FuxiCTR's ``FGCNN_Layer`` in
``model_zoo/FGCNN/src/FGCNN.py``.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ctrkit.nn.mlp import activation


def pooled_heights(num_fields: int, pooling_sizes: Sequence[int]) -> list[int]:
    """Field-axis height after each pooling layer: h_i = ceil(h_{i-1} / p_i), h_0 = num_fields."""
    heights, h = [], num_fields
    for p in pooling_sizes:
        h = math.ceil(h / p)
        heights.append(h)
    return heights


def generated_field_count(num_fields: int, pooling_sizes: Sequence[int], recombined_channels: Sequence[int]) -> int:
    """New fields FGCNN generates: sum_i h_i * r_i (layer i's pooled height times its recombined
    channels), the count of new features in the paper's recombination layer."""
    return sum(h * r for h, r in zip(pooled_heights(num_fields, pooling_sizes), recombined_channels))


class FeatureGeneration(nn.Module):
    """Generate new field embeddings from the raw ones.

    x: (B, F, D) -> (B, num_new_fields, D), ``num_new_fields = generated_field_count(...)``.

    Layer i: Conv2d over the field axis (kernel (k_i, 1), ``channels[i]`` maps) -> [BatchNorm2d]
    -> activation -> MaxPool (p_i, 1); the pooled maps (B, c_i, h_i, D) are flattened and a
    fully connected layer + activation "recombines" them into h_i * r_i new D-dim fields. The
    next layer convolves the pooled maps, not the recombined ones.

    Departures from FuxiCTR (shape-preserving in the cases FuxiCTR supports): the convolution keeps
    the height for every k (FuxiCTR pads (k-1)//2 on both sides, which shrinks it for even k) and pooling
    uses ``ceil_mode`` (FuxiCTR pads ``h % p`` rows on both sides, which errors for p > 2 with
    some heights); both give h_i = ceil(h_{i-1} / p_i), so a ragged last window is pooled
    on its own at the bottom rather than the top.
    """

    def __init__(
        self,
        num_fields: int,
        dim: int,
        *,
        channels: Sequence[int],
        kernel_heights: Sequence[int],
        pooling_sizes: Sequence[int],
        recombined_channels: Sequence[int],
        activation_name: str = "tanh",
        batch_norm: bool = True,
    ):
        super().__init__()
        n = len(channels)
        if not n or not (n == len(kernel_heights) == len(pooling_sizes) == len(recombined_channels)):
            raise ValueError(
                "channels, kernel_heights, pooling_sizes and recombined_channels must be non-empty "
                f"and of one length (got {len(channels)}, {len(kernel_heights)}, "
                f"{len(pooling_sizes)}, {len(recombined_channels)})"
            )
        self.dim = dim
        self.convs = nn.ModuleList()
        self.recombine = nn.ModuleList()
        in_channels = 1
        for c, k, p, r, h in zip(
            channels, kernel_heights, pooling_sizes, recombined_channels, pooled_heights(num_fields, pooling_sizes)
        ):
            # "Same" padding along the field axis, the extra row at the bottom for even k.
            top = (k - 1) // 2
            conv: list[nn.Module] = [
                nn.ZeroPad2d((0, 0, top, k - 1 - top)),
                nn.Conv2d(in_channels, c, kernel_size=(k, 1)),
            ]
            if batch_norm:
                conv.append(nn.BatchNorm2d(c))
            conv += [activation(activation_name), nn.MaxPool2d((p, 1), ceil_mode=True)]
            self.convs.append(nn.Sequential(*conv))
            self.recombine.append(nn.Sequential(nn.Linear(c * h * dim, r * h * dim), activation(activation_name)))
            in_channels = c
        self.num_new_fields = generated_field_count(num_fields, pooling_sizes, recombined_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        maps = x.unsqueeze(1)  # (B, 1, F, D): one input channel
        new = []
        for conv, recombine in zip(self.convs, self.recombine):
            maps = conv(maps)  # (B, c_i, h_i, D)
            new.append(recombine(maps.flatten(1)).view(B, -1, self.dim))  # (B, h_i * r_i, D)
        return torch.cat(new, dim=1)


@functools.lru_cache(maxsize=None)
def _upper_pairs(num_fields: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of the pairs i < j, built with NumPy so that a traced export records them as
    constants (the ONNX exporter has no ``triu_indices``)."""
    rows, cols = np.triu_indices(num_fields, k=1)
    return torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(cols.astype(np.int64))


def pairwise_inner_products(e: torch.Tensor) -> torch.Tensor:
    """<v_i, v_j> for every field pair i < j: (B, F, D) -> (B, F*(F-1)/2), ``torch.triu_indices``
    order. IPNN's product signal, which FGCNN's classifier takes over raw + generated fields.

    Same result and order as ``ctrkit.nn.interactions.InnerProductPairs``; FGCNN's field count is
    only known after generation, so a parameter-free function serves it here.
    """
    rows, cols = (t.to(e.device) for t in _upper_pairs(int(e.shape[1])))
    gram = torch.bmm(e, e.transpose(1, 2))  # (B, F, F)
    return gram[:, rows, cols]

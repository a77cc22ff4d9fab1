"""The Compressed Interaction Network (CIN) of xDeepFM.

Reference: Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for
Recommender Systems", KDD 2018 (the CIN section); layout as FuxiCTR's
``fuxictr/pytorch/layers/interactions/compressed_interaction_net.py``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class CompressedInteraction(nn.Module):
    """CIN: each layer takes the outer product (per embedding coordinate) of the base fields with
    the previous layer's feature maps and compresses it to ``layer_sizes[k]`` new feature maps.

    With X^0 = e (B, F, D) and X^k (B, H_k, D):

        Z^{k+1}[b, i, j, :] = X^0[b, i, :] * X^k[b, j, :]          (B, F, H_k, D)
        X^{k+1} = Conv1d_{1x1}(Z^{k+1} flattened to F*H_k channels)  (B, H_{k+1}, D)

    Each X^k is sum-pooled over the embedding axis and all pooled vectors are concatenated.

    e: (B, F, D) -> (B, sum(layer_sizes)). ``output_dim`` is that width; the model puts its own
    linear layer on top (the paper's output unit).

    Departure from the paper: no "split half" option (every feature map of every layer is both
    pooled and fed forward), as in FuxiCTR; no activation on the feature maps (the paper's
    identity choice, also FuxiCTR's).
    """

    def __init__(self, num_fields: int, layer_sizes: Sequence[int]):
        super().__init__()
        if not layer_sizes:
            raise ValueError("CompressedInteraction needs at least one layer size")
        self.layer_sizes = tuple(int(h) for h in layer_sizes)
        self.layers = nn.ModuleList()
        prev = num_fields
        for h in self.layer_sizes:
            # A 1x1 convolution over the F*H_k channels: one weight matrix W^{k,h} per output map,
            # shared across the D embedding coordinates (the paper's "compression").
            self.layers.append(nn.Conv1d(num_fields * prev, h, kernel_size=1))
            prev = h

    @property
    def output_dim(self) -> int:
        return sum(self.layer_sizes)

    def feature_maps(self, e: torch.Tensor) -> list[torch.Tensor]:
        """e: (B, F, D) -> [X^1, ..., X^K], X^k of shape (B, layer_sizes[k-1], D)."""
        return [x.transpose(1, 2) for x in self._feature_maps_t(e)]

    def _feature_maps_t(self, e: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps coordinate-major: e (B, F, D) -> [X^k transposed, (B, D, H_k)].

        Why this layout: the 1x1 convolution over (B, F*H_k, D) is, per sample, a product with
        only D = 10 columns, which the convolution kernels run at a few percent of the CPU's
        matmul rate (its backward was half of a CIN training step). With the embedding
        coordinate moved next to the batch, Z^{k+1} is a (B*D, F*H_k) matrix and the whole layer
        one large GEMM with the same weights; the channel order (field-major, i*H_k + j) is the
        one the convolution used, so parameters and results are unchanged.
        """
        B, F, D = e.shape
        et = e.transpose(1, 2)  # (B, D, F)
        x = et
        maps = []
        for conv in self.layers:
            z = (et.unsqueeze(3) * x.unsqueeze(2)).reshape(B * D, -1)  # (B*D, F*H_k)
            x = torch.nn.functional.linear(z, conv.weight.squeeze(-1), conv.bias).view(B, D, -1)  # (B, D, H_{k+1})
            maps.append(x)
        return maps

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.sum(dim=1) for x in self._feature_maps_t(e)], dim=1)

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

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        log_e = torch.log(e.abs().clamp_min(self.eps))  # (B, F, D)
        if self.log_bn is not None:
            log_e = self.log_bn(log_e)  # normalises each field over batch and coordinates
        z = self.coefficient(log_e.transpose(1, 2)).transpose(1, 2)  # (B, L, D)
        y = torch.exp(z)
        if self.exp_bn is not None:
            y = self.exp_bn(y)
        return y.flatten(1)

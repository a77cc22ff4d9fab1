"""The multi-layer perceptron every deep CTR model stacks, and activation lookup by name."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ctrkit.nn.dropout import FastDropout


def activation(name: str) -> nn.Module:
    """An activation module by (case-insensitive) name: relu, tanh, sigmoid, leaky_relu, gelu,
    prelu, silu, linear/identity."""
    key = name.lower()
    table = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "leaky_relu": nn.LeakyReLU,
        "leakyrelu": nn.LeakyReLU,
        "gelu": nn.GELU,
        "prelu": nn.PReLU,
        "silu": nn.SiLU,
        "linear": nn.Identity,
        "identity": nn.Identity,
    }
    if key not in table:
        raise ValueError(f"unknown activation '{name}' (known: {sorted(table)})")
    return table[key]()


class MLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout] per hidden layer, then an optional output
    linear layer.

    Same layer order, meaning and initialisation (Xavier-normal weights, zero biases) as FuxiCTR's
    ``MLP_Block`` (whose BARS configs call these
    ``hidden_units``, ``hidden_activations``, ``net_dropout``, ``batch_norm``).

    x: (B, input_dim) -> (B, hidden_units[-1]) or (B, output_dim) when ``output_dim`` is set.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_units: Sequence[int] = (),
        *,
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        output_dim: int | None = None,
        output_bias: bool = True,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        d = input_dim
        for h in hidden_units:
            layers.append(nn.Linear(d, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(activation(activation_name))
            if dropout > 0:
                layers.append(FastDropout(dropout))
            d = h
        if output_dim is not None:
            layers.append(nn.Linear(d, output_dim, bias=output_bias))
            d = output_dim
        self.net = nn.Sequential(*layers)
        self.output_dim = d
        for m in self.net:
            if isinstance(m, nn.Linear):
                # FuxiCTR's BaseModel re-initialises every Linear this way; the BARS configs were
                # tuned with it (PyTorch's default uniform init trains a little differently).
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

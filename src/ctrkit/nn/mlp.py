"""The multi-layer perceptron every deep CTR model stacks, and activation lookup by name."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ctrkit.nn.dropout import FastDropout


def activation(name: str, dim: int | None = None) -> nn.Module:
    """An activation module by (case-insensitive) name: relu, tanh, sigmoid, leaky_relu, gelu,
    prelu, silu, linear/identity, and dice (DIN's Dice, which has per-unit state and so needs the
    layer width ``dim``)."""
    key = name.lower()
    if key == "dice":
        if dim is None:
            raise ValueError("the 'dice' activation needs the layer width")
        return Dice(dim)
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


class Dice(nn.Module):
    """Dice (Zhou et al., DIN, KDD 2018, eq. 9): ``f(s) = p(s) s + (1 - p(s)) alpha s`` with
    ``p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + eps))``.

    x: (N, dim) -> (N, dim). E and Var are the mini-batch statistics in training and running
    averages at inference, as batch norm without affine parameters (the official DIN code:
    ``tf.layers.batch_normalization(center=False, scale=False, epsilon=1e-9)``, momentum 0.99,
    ``alpha`` per channel initialised to 0). Departure: a training batch with fewer than two rows
    uses the running statistics (and does not update them) instead of failing.
    """

    def __init__(self, dim: int, eps: float = 1e-9, momentum: float = 0.01):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.alpha = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] > 1:
            mean = x.mean(0)
            var = x.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(x.detach().var(0, unbiased=True), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        p = torch.sigmoid((x - mean) * torch.rsqrt(var + self.eps))
        return p * x + (1 - p) * self.alpha * x


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
            layers.append(activation(activation_name, h))
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

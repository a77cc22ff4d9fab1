"""Mixture-of-experts building blocks for multi-task models: expert groups, softmax gates, and the
Customized Gate Control (CGC) layer of PLE.

References: Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts" (MMoE), KDD 2018; Tang et al., "Progressive Layered Extraction (PLE)", RecSys
2020. Layer layout follows FuxiCTR's ``model_zoo/multitask`` (MMoE_Layer, CGC_Layer): every expert
and gate is an MLP over the same input; a gate ends in a linear layer to the number of experts it
mixes and a softmax.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ctrkit.nn.mlp import MLP


class ExpertGroup(nn.Module):
    """``num_experts`` independent MLPs over the same input.

    x: (B, input_dim) -> (B, num_experts, hidden_units[-1]).
    """

    def __init__(
        self,
        input_dim: int,
        num_experts: int,
        hidden_units: Sequence[int],
        *,
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"need at least one expert, got {num_experts}")
        if not hidden_units:
            raise ValueError("an expert needs at least one hidden layer")
        self.experts = nn.ModuleList(
            MLP(input_dim, hidden_units, activation_name=activation_name, dropout=dropout, batch_norm=batch_norm)
            for _ in range(num_experts)
        )
        self.num_experts = num_experts
        self.output_dim = int(hidden_units[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([e(x) for e in self.experts], dim=1)


class SoftmaxGate(nn.Module):
    """Gate: MLP(hidden_units) -> linear to ``num_experts`` -> softmax.

    x: (B, input_dim) -> (B, num_experts) weights, non-negative and summing to 1 per row. With
    empty ``hidden_units`` it is MMoE's original ``softmax(W_g x)`` (no bias, as in the paper).
    """

    def __init__(
        self,
        input_dim: int,
        num_experts: int,
        hidden_units: Sequence[int] = (),
        *,
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.net = MLP(
            input_dim,
            hidden_units,
            activation_name=activation_name,
            dropout=dropout,
            batch_norm=batch_norm,
            output_dim=num_experts,
            output_bias=bool(hidden_units),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=-1)


def mix(experts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """experts: (B, E, H), weights: (B, E) -> (B, H), the gate-weighted sum of expert outputs."""
    return torch.bmm(weights.unsqueeze(1), experts).squeeze(1)


class CGCLayer(nn.Module):
    """One Customized Gate Control layer (PLE, Tang et al. 2020, Sec. 4.2 / Fig. 4).

    Every task ``k`` owns ``num_specific`` experts; ``num_shared`` experts are shared. Task ``k``'s
    gate (fed by task ``k``'s input) mixes its own experts and the shared ones; unless this is the
    last layer, a shared gate (fed by the shared input) mixes *all* experts into the next layer's
    shared input (the "progressive" part of PLE; a single last CGC layer is CGC alone).

    inputs: list of ``num_tasks + 1`` tensors (B, input_dim): the task inputs then the shared input
    (the first layer passes the same tensor ``num_tasks + 1`` times).
    returns ``(outputs, gates)``: outputs, a list of ``num_tasks`` (last layer) or ``num_tasks + 1``
    tensors (B, expert_dim); gates, the gate weights, task gates first, (B, num_specific +
    num_shared) each, then (not on the last layer) the shared gate (B, num_tasks * num_specific +
    num_shared).
    """

    def __init__(
        self,
        input_dim: int,
        num_tasks: int,
        num_shared: int,
        num_specific: int,
        expert_hidden_units: Sequence[int],
        gate_hidden_units: Sequence[int] = (),
        *,
        last: bool,
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        kw = dict(activation_name=activation_name, dropout=dropout, batch_norm=batch_norm)
        self.num_tasks, self.num_shared, self.num_specific, self.last = num_tasks, num_shared, num_specific, last
        self.specific = nn.ModuleList(
            ExpertGroup(input_dim, num_specific, expert_hidden_units, **kw) for _ in range(num_tasks)
        )
        self.shared = ExpertGroup(input_dim, num_shared, expert_hidden_units, **kw)
        self.task_gates = nn.ModuleList(
            SoftmaxGate(input_dim, num_specific + num_shared, gate_hidden_units, **kw) for _ in range(num_tasks)
        )
        self.shared_gate = (
            None
            if last
            else SoftmaxGate(input_dim, num_tasks * num_specific + num_shared, gate_hidden_units, **kw)
        )
        self.output_dim = int(expert_hidden_units[-1])

    def forward(self, inputs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if len(inputs) != self.num_tasks + 1:
            raise ValueError(f"CGCLayer expects {self.num_tasks + 1} inputs, got {len(inputs)}")
        shared = self.shared(inputs[-1])  # (B, S, H)
        specific = [self.specific[k](inputs[k]) for k in range(self.num_tasks)]  # (B, P, H) each
        outs, gates = [], []
        for k in range(self.num_tasks):
            g = self.task_gates[k](inputs[k])  # (B, P + S)
            outs.append(mix(torch.cat([specific[k], shared], dim=1), g))
            gates.append(g)
        if self.shared_gate is not None:
            g = self.shared_gate(inputs[-1])  # (B, T*P + S)
            outs.append(mix(torch.cat(specific + [shared], dim=1), g))
            gates.append(g)
        return outs, gates

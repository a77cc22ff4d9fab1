"""The interaction machine of DeepIM: all field interactions up to order 5 by Newton's identities.

Reference: Yu et al., "Deep Interaction Machine: A Simple but Effective Model for High-order
Feature Interactions", CIKM 2020 (Section 3: the elementary symmetric polynomials of the field
embeddings, computed from power sums). Details as FuxiCTR's ``InteractionMachine`` in
``fuxictr/pytorch/layers/interactions/interaction_machine.py``.
"""

from __future__ import annotations

import torch
from torch import nn


def elementary_symmetric(e: torch.Tensor, order: int) -> list[torch.Tensor]:
    """e: (B, F, D) -> [t_1, ..., t_order], each (B, D), t_k = sum_{i_1<...<i_k} e_i1 * ... * e_ik
    (element-wise), from the power sums p_k = sum_i e_i^k (Newton's identities).

    t_1 = p_1 is the sum of the fields and t_2 = (p_1^2 - p_2)/2 is FM's bi-interaction.
    """
    if not 1 <= order <= 5:
        raise ValueError(f"interaction machine order must be in 1..5, got {order}")
    p = []
    q = e
    for k in range(order):
        if k:
            q = q * e
        p.append(q.sum(dim=1))
    p1 = p[0]
    out = [p1]
    if order >= 2:
        p2 = p[1]
        out.append((p1.pow(2) - p2) / 2)
    if order >= 3:
        p3 = p[2]
        out.append((p1.pow(3) - 3 * p1 * p2 + 2 * p3) / 6)
    if order >= 4:
        p4 = p[3]
        out.append((p1.pow(4) - 6 * p1.pow(2) * p2 + 3 * p2.pow(2) + 8 * p1 * p3 - 6 * p4) / 24)
    if order >= 5:
        p5 = p[4]
        out.append(
            (p1.pow(5) - 10 * p1.pow(3) * p2 + 20 * p1.pow(2) * p3 - 30 * p1 * p4 - 20 * p2 * p3
             + 15 * p1 * p2.pow(2) + 24 * p5) / 120
        )
    return out


class InteractionMachine(nn.Module):
    """e: (B, F, D) -> (B, 1): w^T [BN]([t_1, ..., t_order]) + b.

    The concatenated terms are (B, order * D); ``terms`` returns them before batch norm.
    """

    def __init__(self, embedding_dim: int, order: int = 2, batch_norm: bool = False):
        super().__init__()
        if not 1 <= order <= 5:
            raise ValueError(f"interaction machine order must be in 1..5, got {order}")
        self.order = order
        self.bn = nn.BatchNorm1d(order * embedding_dim) if batch_norm else None
        self.fc = nn.Linear(order * embedding_dim, 1)
        nn.init.xavier_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def terms(self, e: torch.Tensor) -> torch.Tensor:
        return torch.cat(elementary_symmetric(e, self.order), dim=-1)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        t = self.terms(e)
        if self.bn is not None:
            t = self.bn(t)
        return self.fc(t)

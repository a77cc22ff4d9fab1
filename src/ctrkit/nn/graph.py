"""Graph layers of FiGNN: fields as nodes of a fully connected graph with attentional edges.

Reference: Li et al., "Fi-GNN: Modeling Feature Interactions via Graph Neural Networks for CTR
Prediction", CIKM 2019 (Sections 4.2-4.4: edge-wise attention, node-specific transforms, GRU
state update with residual connections, attentional scoring). Layout as FuxiCTR's
``FiGNN_Layer``, ``GraphLayer`` and ``AttentionalPrediction`` in ``model_zoo/FiGNN/src/FiGNN.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ctrkit.nn.softmax import softmax_last


class GraphLayer(nn.Module):
    """One round of message passing with node-specific weights.

    g: (B, F, F) adjacency (row i: weights of node i's neighbours), h: (B, F, D) ->
    a: (B, F, D) with a_i = W_in[i] sum_j g_ij W_out[j] h_j + b.
    """

    def __init__(self, num_fields: int, dim: int):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(num_fields, dim, dim))
        self.W_out = nn.Parameter(torch.empty(num_fields, dim, dim))
        # Xavier-normal on the (F, D, D) tensors, exactly as FuxiCTR calls it.
        nn.init.xavier_normal_(self.W_in)
        nn.init.xavier_normal_(self.W_out)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        h_out = torch.einsum("fde,bfe->bfd", self.W_out, h)  # (B, F, D)
        aggr = torch.bmm(g, h_out)  # (B, F, D)
        return torch.einsum("fde,bfe->bfd", self.W_in, aggr) + self.bias


class FiGNNLayer(nn.Module):
    """The feature graph: attention adjacency from the initial embeddings, then ``num_layers``
    rounds of :class:`GraphLayer` with a GRU (or additive) state update and a residual to e.

    e: (B, F, D) -> (B, F, D).

    Edge weights (paper Eq. 4-5): alpha_ij = LeakyReLU(w^T [e_i; e_j]), softmax over j != i (no
    self loops). Computed as w_1^T e_i + w_2^T e_j, which equals the concatenated form without
    building the F^2 pairs.
    """

    def __init__(
        self,
        num_fields: int,
        dim: int,
        *,
        num_layers: int = 3,
        reuse_graph_layer: bool = False,
        use_gru: bool = True,
        use_residual: bool = True,
    ):
        super().__init__()
        if num_fields < 2:
            raise ValueError(f"FiGNN needs at least 2 fields to build a graph, got {num_fields}")
        if num_layers < 1:
            raise ValueError(f"gnn_layers must be >= 1, got {num_layers}")
        self.num_fields, self.dim, self.num_layers = num_fields, dim, num_layers
        self.use_residual = use_residual
        n_graph = 1 if reuse_graph_layer else num_layers
        self.gnn = nn.ModuleList(GraphLayer(num_fields, dim) for _ in range(n_graph))
        self.gru = nn.GRUCell(dim, dim) if use_gru else None
        self.W_attn = nn.Linear(2 * dim, 1, bias=False)
        nn.init.xavier_normal_(self.W_attn.weight)
        self.register_buffer("eye", torch.eye(num_fields, dtype=torch.bool), persistent=False)

    def attention_graph(self, e: torch.Tensor) -> torch.Tensor:
        """e: (B, F, D) -> (B, F, F); each row sums to one, zero on the diagonal."""
        w_src, w_dst = self.W_attn.weight[0].split(self.dim)
        scores = (e @ w_src).unsqueeze(2) + (e @ w_dst).unsqueeze(1)  # (B, F, F): [i, j]
        scores = F.leaky_relu(scores, negative_slope=0.01).masked_fill(self.eye, float("-inf"))
        return softmax_last(scores)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        g = self.attention_graph(e)
        h = e
        B = e.shape[0]
        for i in range(self.num_layers):
            a = self.gnn[0 if len(self.gnn) == 1 else i](g, h)
            if self.gru is not None:
                h = self.gru(a.reshape(-1, self.dim), h.reshape(-1, self.dim)).view(B, self.num_fields, self.dim)
            else:
                h = a + h
            if self.use_residual:
                h = h + e
        return h


class AttentionalPrediction(nn.Module):
    """FiGNN's output: a score per node and a sigmoid attention weight per node from all nodes.

    h: (B, F, D) -> (B,) = sum_i sigmoid(W2 flatten(h))_i * (w1^T h_i).
    """

    def __init__(self, num_fields: int, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1, bias=False)
        self.weight = nn.Linear(num_fields * dim, num_fields, bias=False)
        nn.init.xavier_normal_(self.score.weight)
        nn.init.xavier_normal_(self.weight.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        score = self.score(h).squeeze(-1)  # (B, F)
        weight = torch.sigmoid(self.weight(h.flatten(1)))  # (B, F)
        return (weight * score).sum(dim=1)

"""Multi-domain layers: partitioned normalization, the star-topology FCN (STAR) and the dynamic
routing of samples to learned clusters (AdaptDHM).

``domain`` arguments are (B,) int64 domain ids in ``[0, num_domains)`` (``Batch.domain``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ctrkit.nn.mlp import activation


def _check_domain(domain: torch.Tensor | None, num_domains: int, batch: int) -> torch.Tensor:
    if domain is None:
        raise ValueError("this layer needs Batch.domain (the schema must name a domain column)")
    if domain.shape != (batch,):
        raise ValueError(f"domain must be ({batch},), got {tuple(domain.shape)}")
    return domain.long()


class PartitionedNorm(nn.Module):
    """Partitioned normalization (STAR, Sheng et al., CIKM 2021, Eq. 3-4).

    ``z' = (gamma * gamma_p) * (z - E_p) / sqrt(Var_p + eps) + (beta + beta_p)`` for a sample of
    domain p: the scale and shift are a shared part times / plus a domain part, and the statistics
    are per domain. In training E_p, Var_p are the batch statistics of the rows of domain p (the
    paper draws every mini-batch from one domain; ctrkit batches mix domains, so each domain's rows
    are normalised with their own statistics), and per-domain moving averages are updated with
    ``momentum``; in evaluation the moving averages are used.

    x: (B, H), domain: (B,) -> (B, H).
    """

    def __init__(self, num_features: int, num_domains: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_domains, self.eps, self.momentum = num_domains, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.domain_weight = nn.Parameter(torch.ones(num_domains, num_features))
        self.domain_bias = nn.Parameter(torch.zeros(num_domains, num_features))
        self.register_buffer("running_mean", torch.zeros(num_domains, num_features))
        self.register_buffer("running_var", torch.ones(num_domains, num_features))

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        domain = _check_domain(domain, self.num_domains, x.shape[0])
        if self.training:
            ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
            count = torch.zeros(self.num_domains, 1, dtype=x.dtype, device=x.device).index_add_(0, domain, ones)
            n = count.clamp_min(1.0)
            mean = torch.zeros(self.num_domains, x.shape[1], dtype=x.dtype, device=x.device).index_add(0, domain, x) / n
            centred = x - mean[domain]
            var = torch.zeros_like(mean).index_add(0, domain, centred * centred) / n
            with torch.no_grad():
                present = count > 0  # (ND, 1)
                unbiased = var * (n / (n - 1).clamp_min(1.0))
                m = self.momentum
                self.running_mean.copy_(torch.where(present, (1 - m) * self.running_mean + m * mean, self.running_mean))
                self.running_var.copy_(torch.where(present, (1 - m) * self.running_var + m * unbiased, self.running_var))
            z = centred * torch.rsqrt(var[domain] + self.eps)
        else:
            z = (x - self.running_mean[domain]) * torch.rsqrt(self.running_var[domain] + self.eps)
        return z * (self.weight * self.domain_weight[domain]) + (self.bias + self.domain_bias[domain])


class StarLinear(nn.Module):
    """A star-topology linear layer (STAR Eq. 5-6): for a sample of domain p,
    ``y = x (W ⊙ W_p) + (b + b_p)`` with shared (W, b) and domain-specific (W_p, b_p).

    Shared weights: Xavier-normal, zero bias (as :class:`ctrkit.nn.mlp.MLP`). Domain weights start
    at 1 and domain biases at 0, so the untrained layer is exactly the shared layer (the paper does
    not fix an initialisation; this one makes every domain start from the shared network).

    x: (B, in), domain: (B,) -> (B, out). One matmul per domain present in the batch (the
    per-sample (B, in, out) weight would be far too large).
    """

    def __init__(self, in_features: int, out_features: int, num_domains: int):
        super().__init__()
        self.num_domains = num_domains
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.domain_weight = nn.Parameter(torch.ones(num_domains, in_features, out_features))
        self.domain_bias = nn.Parameter(torch.zeros(num_domains, out_features))
        nn.init.xavier_normal_(self.weight.T)

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        domain = _check_domain(domain, self.num_domains, x.shape[0])
        w = self.weight.unsqueeze(0) * self.domain_weight  # (ND, in, out)
        b = self.bias.unsqueeze(0) + self.domain_bias  # (ND, out)
        out = x.new_zeros(x.shape[0], w.shape[2])
        for d in range(self.num_domains):
            idx = (domain == d).nonzero(as_tuple=True)[0]
            if idx.numel():
                out = out.index_copy(0, idx, torch.addmm(b[d], x.index_select(0, idx), w[d]))
        return out


class StarFCN(nn.Module):
    """The star-topology fully connected network: StarLinear -> activation -> [dropout] per hidden
    layer, then a StarLinear to ``output_dim`` (STAR Sec. 4.2).

    x: (B, in), domain: (B,) -> (B, output_dim).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_units: Sequence[int],
        num_domains: int,
        *,
        output_dim: int = 1,
        activation_name: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        dims = [input_dim, *hidden_units, output_dim]
        self.layers = nn.ModuleList(StarLinear(a, b, num_domains) for a, b in zip(dims[:-1], dims[1:]))
        self.acts = nn.ModuleList(activation(activation_name) for _ in hidden_units)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, domain)
            if i < len(self.acts):
                x = self.dropout(self.acts[i](x))
        return x


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Capsule squashing (Sabour et al., NeurIPS 2017, Eq. 1): ``|s|^2/(1+|s|^2) * s/|s|``."""
    n2 = (s * s).sum(dim, keepdim=True)
    return s * (n2 / (1.0 + n2)) * torch.rsqrt(n2 + eps)


class DynamicRouting(nn.Module):
    """Routes every sample to ``num_clusters`` learned clusters by capsule-style routing-by-agreement
    (AdaptDHM's distribution adaptation module, Li et al. 2022, implemented from the paper's
    description; see the departures below).

    Per cluster k a linear map gives the sample's vote ``u_k = W_k h`` (B, K, C) and a learned
    cluster centre ``mu_k`` (K, C) is the cluster's prior state. Routing logits start at
    ``b_k = <u_k, squash(mu_k)>`` (agreement with the centre); each of ``iterations`` rounds does
    ``c = softmax_k(b)``, ``v_k = squash(c_k u_k + mu_k)`` (the cluster state after absorbing the
    sample), ``b_k += <u_k, v_k>``. The returned coefficients ``c = softmax_k(b)`` (B, K) are
    non-negative and sum to 1 per sample.

    Departures (the paper's exact update equations were not available here): the cluster state is
    per sample (centre plus this sample's weighted vote) rather than accumulated over a batch, so
    a prediction never depends on the other rows of its batch; votes are scaled by 1/sqrt(C) in
    the agreements to keep the softmax temperature independent of C.

    h: (B, input_dim) -> coefficients (B, K).
    """

    def __init__(self, input_dim: int, num_clusters: int, capsule_dim: int = 16, iterations: int = 3):
        super().__init__()
        if num_clusters < 1 or iterations < 1:
            raise ValueError("DynamicRouting needs num_clusters >= 1 and iterations >= 1")
        self.num_clusters, self.capsule_dim, self.iterations = num_clusters, capsule_dim, iterations
        self.votes = nn.Linear(input_dim, num_clusters * capsule_dim, bias=False)
        self.centres = nn.Parameter(torch.randn(num_clusters, capsule_dim))
        nn.init.xavier_normal_(self.votes.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        K, C = self.num_clusters, self.capsule_dim
        scale = C**-0.5
        u = self.votes(h).view(-1, K, C)  # (B, K, C)
        b = (u * squash(self.centres)).sum(-1) * scale  # (B, K)
        for _ in range(self.iterations):
            c = F.softmax(b, dim=-1)
            v = squash(c.unsqueeze(-1) * u + self.centres)  # (B, K, C)
            b = b + (u * v).sum(-1) * scale
        return F.softmax(b, dim=-1)

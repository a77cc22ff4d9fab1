"""Multi-domain layers: partitioned normalization, the star-topology FCN (STAR) and the dynamic
routing of samples to learned clusters (AdaptDHM).

``domain`` arguments are (B,) int64 domain ids in ``[0, num_domains)`` (``Batch.domain``).
"""

from __future__ import annotations

import math
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

    Shared weights: Xavier-normal (std ``sigma = sqrt(2 / (in + out))``), zero bias (as
    :class:`ctrkit.nn.mlp.MLP`); domain biases start at 0.

    The domain weight is stored as an offset: ``W_p = 1 + domain_delta[p] / sigma`` with
    ``domain_delta`` initialised to 0, so the untrained layer is exactly the shared layer (every
    domain starts from the shared network; the paper does not fix an initialisation). Storing
    ``W_p`` itself at 1 (as before) left it nearly inert under Adam: Adam moves every parameter by
    about ``lr`` per step whatever its scale, so a factor of size 1 changed ~1/sigma (~17x for
    400x256) more slowly, relative to its size, than the shared weight of size sigma it
    multiplies, and after a few hundred steps the domains were still close to the shared
    network. With the offset, a step on ``domain_delta`` changes the effective weight
    ``W ⊙ W_p`` by about as much as a step on ``W``. Same function class as the paper's; only
    the optimiser's view of ``W_p`` differs (``domain_factor()`` returns the paper's ``W_p``).

    x: (B, in), domain: (B,) -> (B, out). One matmul per domain present in the batch (the
    per-sample (B, in, out) weight would be far too large).
    """

    def __init__(self, in_features: int, out_features: int, num_domains: int):
        super().__init__()
        self.num_domains = num_domains
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.domain_delta = nn.Parameter(torch.zeros(num_domains, in_features, out_features))
        self.domain_bias = nn.Parameter(torch.zeros(num_domains, out_features))
        nn.init.xavier_normal_(self.weight.T)
        self.delta_gain = math.sqrt((in_features + out_features) / 2.0)  # 1 / sigma

    def domain_factor(self) -> torch.Tensor:
        """The paper's domain-specific weights ``W_p`` (num_domains, in, out)."""
        return 1.0 + self.delta_gain * self.domain_delta

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        domain = _check_domain(domain, self.num_domains, x.shape[0])
        w = self.weight.unsqueeze(0) * self.domain_factor()  # (ND, in, out)
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
    """Clusters samples by dynamic routing (AdaptDHM's distribution adaptation module, Li et al.
    2022) and returns each sample's distribution coefficients over ``num_clusters`` clusters.

    The samples are the low-level capsules and the clusters the high-level ones, as in capsule
    routing-by-agreement (Sabour et al., NeurIPS 2017): a sample's routing representation is
    ``u = normalize((h - mean) / std)`` (``h`` detached; ``mean``/``std`` running statistics
    of h, as batch norm keeps them, so the clustering sees where samples differ rather than the
    common direction of non-negative ReLU outputs). The cluster states are unit vectors
    ``c_k`` (K, H) kept as a buffer across batches. In training, ``iterations`` rounds of

        r = softmax_k(<u_i, c_k> / temperature)                  (B, K)  routing coefficients
        v_k = squash(sum_i r_ik u_i)                                     cluster capsule (agreement)
        c_k <- normalize(momentum * c_k + (1 - momentum) * normalize(v_k))

    run over the batch and the buffer keeps the result: clusters are centres of the samples
    routed to them, so they spread over the data's modes (no loss gradient reaches the routing,
    hence no collapse onto the tower that happens to fit best). The returned coefficients
    ``softmax_k(<u_i, c_k> / temperature)`` use the stored centres, so in evaluation a
    prediction never depends on the other rows of its batch.

    Departures (the paper's exact equations were not available here): the standardisation of
    ``h`` and the cosine similarity with a temperature; the centre update's momentum across
    batches follows the torch-rechub implementation's ``beta``.

    h: (B, input_dim) -> coefficients (B, K), rows sum to 1.
    """

    def __init__(
        self,
        input_dim: int,
        num_clusters: int,
        iterations: int = 3,
        temperature: float = 0.1,
        momentum: float = 0.9,
        stats_momentum: float = 0.1,
        eps: float = 1e-5,
    ):
        super().__init__()
        if num_clusters < 1 or iterations < 1:
            raise ValueError("DynamicRouting needs num_clusters >= 1 and iterations >= 1")
        if temperature <= 0 or not 0 <= momentum < 1:
            raise ValueError("DynamicRouting needs temperature > 0 and 0 <= momentum < 1")
        self.num_clusters, self.iterations = num_clusters, iterations
        self.temperature, self.momentum, self.stats_momentum, self.eps = temperature, momentum, stats_momentum, eps
        self.register_buffer("centres", F.normalize(torch.randn(num_clusters, input_dim), dim=1))
        self.register_buffer("running_mean", torch.zeros(input_dim))
        self.register_buffer("running_var", torch.ones(input_dim))

    @torch.no_grad()
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h.detach()
        if self.training and h.shape[0] > 1:
            self.running_mean.lerp_(h.mean(0), self.stats_momentum)
            self.running_var.lerp_(h.var(0), self.stats_momentum)
        u = F.normalize((h - self.running_mean) * torch.rsqrt(self.running_var + self.eps), dim=1)  # (B, H)
        if self.training:
            c = self.centres
            for _ in range(self.iterations):
                r = F.softmax(u @ c.T / self.temperature, dim=1)  # (B, K)
                v = squash(r.T @ u)  # (K, H)
                c = F.normalize(self.momentum * c + (1 - self.momentum) * F.normalize(v, dim=1), dim=1)
            self.centres.copy_(c)
        return F.softmax(u @ self.centres.T / self.temperature, dim=1)

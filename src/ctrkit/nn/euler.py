"""EulerNet's interaction layer: feature interactions as weighted sums in the complex (polar) space.

Reference: Tian et al., "EulerNet: Adaptive Feature Interaction Learning via Euler's Formula for
CTR Prediction", SIGIR 2023, Section 3. Details as FuxiCTR's ``EulerInteractionLayer`` in
``model_zoo/EulerNet/src/EulerNet.py`` (contributed by the authors).

Each field embedding is a complex vector z = r + i p. By Euler's formula z = lam e^{i theta}, so a
product of powers prod_f z_f^{a_f} (an interaction of learnable, real orders a_f) is
exp(sum_f a_f log lam_f) e^{i sum_f a_f theta_f}: a linear map in log-polar coordinates.
"""

from __future__ import annotations

import torch
from torch import nn

from ctrkit.nn.dropout import FastDropout


def to_polar(r: torch.Tensor, p: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, imaginary) -> (log modulus, phase): (0.5 log(r^2 + p^2 + eps), atan2(p, r))."""
    return 0.5 * torch.log(r.square() + p.square() + eps), torch.atan2(p, r)


def from_polar(log_lam: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log modulus, phase) -> (real, imaginary): e^{log_lam} (cos theta, sin theta)."""
    lam = torch.exp(log_lam)
    return lam * torch.cos(theta), lam * torch.sin(theta)


class EulerInteractionLayer(nn.Module):
    """(r, p), each (B, n_in, D) -> (r', p'), each (B, n_out, D).

    Explicit part, per embedding dimension d and output k (orders A: (n_in, n_out)):
        log lam'_k = sum_f A_fk log lam_f + b_lam,   theta'_k = sum_f A_fk theta_f + b_theta
        (r_ex, p_ex) = lam'_k (cos theta'_k, sin theta'_k)
    Implicit part: (r_im, p_im) = ReLU(W flatten(r) + b), ReLU(W flatten(p) + b), W shared.
    Output (r_ex + r_im, p_ex + p_im), optionally LayerNorm over D (separately for r and p).

    Init as the authors': A = identity when n_in == n_out, else a column softmax of N(0,1)/0.01
    (each output starts close to one input field); b_lam, b_theta ~ N(0, 0.01^2);
    W Xavier-uniform.
    """

    def __init__(
        self,
        num_in: int,
        num_out: int,
        embedding_dim: int,
        *,
        layer_norm: bool = False,
        ex_dropout: float = 0.0,
        im_dropout: float = 0.0,
    ):
        super().__init__()
        self.num_in, self.num_out, self.dim = num_in, num_out, embedding_dim
        if num_in == num_out:
            orders = torch.eye(num_in)
        else:
            orders = torch.softmax(torch.randn(num_in, num_out) / 0.01, dim=0)
        self.orders = nn.Parameter(orders)
        self.bias_lam = nn.Parameter(torch.randn(1, embedding_dim, num_out) * 0.01)
        self.bias_theta = nn.Parameter(torch.randn(1, embedding_dim, num_out) * 0.01)
        self.im = nn.Linear(num_in * embedding_dim, num_out * embedding_dim)
        nn.init.xavier_uniform_(self.im.weight)
        self.drop_ex = FastDropout(ex_dropout) if ex_dropout > 0 else None
        self.drop_im = FastDropout(im_dropout) if im_dropout > 0 else None
        self.norm_r = nn.LayerNorm(embedding_dim) if layer_norm else None
        self.norm_p = nn.LayerNorm(embedding_dim) if layer_norm else None

    def explicit(self, r: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The explicit (Euler) part alone: (B, n_in, D) x2 -> (B, n_out, D) x2."""
        log_lam, theta = to_polar(r, p)
        if self.drop_ex is not None:
            log_lam, theta = self.drop_ex(log_lam), self.drop_ex(theta)
        # (B, D, n_in) @ (n_in, n_out) -> (B, D, n_out) -> (B, n_out, D)
        log_lam = (log_lam.transpose(1, 2) @ self.orders + self.bias_lam).transpose(1, 2)
        theta = (theta.transpose(1, 2) @ self.orders + self.bias_theta).transpose(1, 2)
        return from_polar(log_lam, theta)

    def forward(self, rp: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        r, p = rp
        B = r.shape[0]
        r_ex, p_ex = self.explicit(r, p)
        r_in, p_in = r.reshape(B, -1), p.reshape(B, -1)
        if self.drop_im is not None:
            r_in, p_in = self.drop_im(r_in), self.drop_im(p_in)
        r_im = torch.relu(self.im(r_in)).view(B, self.num_out, self.dim)
        p_im = torch.relu(self.im(p_in)).view(B, self.num_out, self.dim)
        r_out, p_out = r_ex + r_im, p_ex + p_im
        if self.norm_r is not None and self.norm_p is not None:
            r_out, p_out = self.norm_r(r_out), self.norm_p(p_out)
        return r_out, p_out

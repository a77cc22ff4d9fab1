"""FMInteraction's hand-written backward against autograd and the explicit sum over pairs."""

import itertools

import torch

from ctrkit.nn.interactions import FMInteraction


def _pairs(e: torch.Tensor) -> torch.Tensor:
    F = e.shape[1]
    return sum((e[:, i] * e[:, j]).sum(-1) for i, j in itertools.combinations(range(F), 2))


def test_value_equals_explicit_pairwise_sum():
    e = torch.randn(7, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(FMInteraction()(e), _pairs(e))


def test_gradient_matches_gradcheck_and_autograd_of_pairs():
    e = torch.randn(4, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(FMInteraction(), (e,))
    g = torch.randn(4, dtype=torch.float64)
    (ours,) = torch.autograd.grad(FMInteraction()(e), e, g)
    (ref,) = torch.autograd.grad(_pairs(e), e, g)
    torch.testing.assert_close(ours, ref)


def test_float32_close_to_float64():
    e = torch.randn(64, 39, 16)
    torch.testing.assert_close(FMInteraction()(e).double(), _pairs(e.double()), rtol=1e-4, atol=1e-4)


def test_inference_path_equals_training_path():
    e = torch.randn(16, 8, 4)
    with torch.no_grad():
        plain = FMInteraction()(e)
    fused = FMInteraction()(e.clone().requires_grad_())
    torch.testing.assert_close(plain, fused.detach(), rtol=1e-5, atol=1e-5)

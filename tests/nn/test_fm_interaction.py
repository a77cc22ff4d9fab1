"""Hand-written backwards against autograd: FMInteraction (and the explicit sum over pairs), AFM's
blocked attention scores."""

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


def test_afm_blocked_attention_scores_equal_plain_autograd():
    # Training uses the blocked scores with a hand-written backward; inference the plain ops.
    # Values and every gradient must agree, over more rows than one block (5 blocks here).
    from ctrkit.nn.fm_family import AttentionalPooling, _PairAttentionScores

    torch.manual_seed(0)
    B, P, D, A = 9 * _PairAttentionScores.BLOCK // 2 // 45 + 1, 45, 6, 16
    pool = AttentionalPooling(D, A).double()
    with torch.no_grad():
        pool.attention.bias.normal_()  # a bias puts some units on each side of the ReLU
    x = torch.randn(B, P, D, dtype=torch.float64, requires_grad=True)
    g = torch.randn(B, dtype=torch.float64)

    out = pool(x)
    out.backward(g)
    got = [x.grad.clone()] + [p.grad.clone() for p in pool.parameters()]
    x.grad = None
    pool.zero_grad()
    plain = torch.softmax(pool.h(torch.relu(pool.attention(x))).squeeze(-1), dim=1)
    ref = pool.p((plain.unsqueeze(-1) * x).sum(1)).squeeze(-1)
    ref.backward(g)
    want = [x.grad] + [p.grad for p in pool.parameters()]
    assert torch.allclose(out, ref, atol=1e-12)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-10)
    with torch.no_grad():  # the inference path
        assert torch.allclose(pool(x), ref, atol=1e-12)

"""AFN / AFN+: logarithmic neurons y_j = exp(sum_f w_jf log|e_f|) (Cheng et al., AAAI 2020)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.afn import LogarithmicTransform
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def identity_bn(layer: LogarithmicTransform) -> None:
    """Eval mode with fresh statistics (mean 0, var 1) and eps 0: the BatchNorms are identities."""
    layer.eval()
    for bn in (layer.log_bn, layer.exp_bn):
        bn.eps = 0.0


def test_logarithmic_neuron_equals_exp_of_weighted_log_abs_by_hand():
    torch.manual_seed(0)
    F, L, D = 4, 3, 5
    layer = LogarithmicTransform(F, L)
    identity_bn(layer)
    e = torch.randn(2, F, D, dtype=torch.float64) + 0.1
    layer = layer.double()
    w = layer.coefficient.weight  # (L, F)
    expected = torch.empty(2, L, D, dtype=torch.float64)
    for b in range(2):
        for j in range(L):
            for k in range(D):
                s = sum(w[j, f] * torch.log(e[b, f, k].abs()) for f in range(F))
                expected[b, j, k] = torch.exp(s)
    with torch.no_grad():
        torch.testing.assert_close(layer(e), expected.flatten(1))


def test_integer_orders_give_monomials():
    layer = LogarithmicTransform(3, 2)
    identity_bn(layer)
    with torch.no_grad():
        layer.coefficient.weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.0, 1.0]]))
        e = torch.randn(4, 3, 2) + 0.05
        out = layer(e).view(4, 2, 2)
    a = e.abs()
    torch.testing.assert_close(out[:, 0], a[:, 0] * a[:, 1], rtol=1e-4, atol=1e-6)  # 2nd-order cross
    torch.testing.assert_close(out[:, 1], a[:, 0] ** 2 * a[:, 2], rtol=1e-4, atol=1e-6)  # 3rd order


def test_zero_embeddings_are_clamped_not_minus_infinity():
    layer = LogarithmicTransform(2, 2)
    out = layer(torch.zeros(3, 2, 4))
    assert torch.isfinite(out).all()


def test_afn_plus_adds_a_dnn_on_its_own_embeddings():
    schema = tiny_schema()
    afn = build_model("AFN", schema, {"logarithmic_neurons": 4})
    plus = build_model("AFN+", schema, {"logarithmic_neurons": 4})
    assert afn.dnn is None and afn.fc is None
    assert plus.dnn is not None and plus.embedding2 is not plus.embedding
    plus.eval()
    b = random_batch(schema, 8)
    with torch.no_grad():
        afn_out = plus.afn_mlp(plus.log_net(plus.embedding(b)))
        dnn_out = plus.dnn(plus.embedding2(b).flatten(1))
        expected = plus.fc(torch.cat([afn_out, dnn_out], -1)).squeeze(-1)
        torch.testing.assert_close(plus(b).logits["click"], expected)


def test_bars_frappe_configs_match_logged_parameter_counts():
    for name, file, count in (("AFN", "AFN.yaml", 4066711), ("AFN+", "AFNPlus.yaml", 4482205)):
        cfg = yaml.safe_load((BARS / file).read_text())
        assert cfg["model"]["name"] == name
        model = build_model(name, frappe_like_schema(), cfg["model"]["params"])
        assert sum(p.numel() for p in model.parameters()) == count, name


@pytest.mark.parametrize("neuron_major", [True, False])
def test_fused_training_path_equals_exp_then_batchnorm(neuron_major):
    """Training mode runs exp and the neuron BatchNorm as one blocked function; its output, every
    gradient and the running statistics must equal exp followed by nn.BatchNorm1d, in either
    output order."""
    torch.manual_seed(3)
    B, F, L, D = 37, 5, 6, 4  # B not a multiple of the block
    fused = LogarithmicTransform(F, L).double()
    plain = LogarithmicTransform(F, L).double()
    plain.load_state_dict(fused.state_dict())
    with torch.no_grad():  # non-trivial affine parameters
        for layer in (fused, plain):
            layer.exp_bn.weight.copy_(torch.linspace(0.5, 1.5, L))
            layer.exp_bn.bias.copy_(torch.linspace(-0.2, 0.3, L))
    e = torch.randn(B, F, D, dtype=torch.float64, requires_grad=True)
    e2 = e.detach().clone().requires_grad_(True)
    out = fused(e, neuron_major=neuron_major)

    def reference(layer: LogarithmicTransform, x: torch.Tensor) -> torch.Tensor:
        log_x = layer.log_bn(torch.log(x.abs().clamp_min(layer.eps)))
        z = layer.coefficient(log_x.transpose(1, 2)).transpose(1, 2)
        y = layer.exp_bn(torch.exp(z))  # (B, L, D)
        return y.flatten(1) if neuron_major else y.transpose(1, 2).flatten(1)

    ref = reference(plain, e2)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(e.grad, e2.grad)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(fused.exp_bn, name), getattr(plain.exp_bn, name), msg=name)
    fused.eval()
    plain.eval()
    with torch.no_grad():  # inference takes the plain path: the same values from the same state
        torch.testing.assert_close(fused(e, neuron_major=neuron_major), reference(plain, e))


def test_afn_training_step_equals_the_neuron_major_layout():
    # AFN feeds its MLP the neurons in (D, L) order with the first weight's columns permuted:
    # the output and every gradient must be those of FuxiCTR's (L, D) layout.
    torch.manual_seed(4)
    schema = tiny_schema()
    model = build_model("AFN", schema, {"logarithmic_neurons": 6, "afn_hidden_units": (8,), "embedding_dim": 4})
    ref = copy.deepcopy(model)
    model.train()
    ref.train()
    b = random_batch(schema, 33)
    out = model(b).logits["click"]
    want = ref.afn_mlp(ref.log_net(ref.embedding(b), neuron_major=True)).squeeze(-1)
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    out.backward(g)
    want.backward(g)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        if p.grad is not None or q.grad is not None:
            # d log|e| / de = 1/e: embedding gradients reach 1e4-1e5 here, so float32 rounding
            # of sums taken in a different order is judged against that scale.
            scale = float(q.grad.abs().max())
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6 * scale + 1e-6, msg=name)

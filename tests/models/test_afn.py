"""AFN / AFN+: logarithmic neurons y_j = exp(sum_f w_jf log|e_f|) (Cheng et al., AAAI 2020)."""

from __future__ import annotations

from pathlib import Path

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

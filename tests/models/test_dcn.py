"""DCN: cross layer x_{l+1} = x_0 x_l^T w_l + b_l + x_l (Wang et al., ADKDD 2017, Sec. 2.2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.cross import CrossNet
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_zero_weights_make_the_cross_network_identity_plus_biases():
    net = CrossNet(6, num_layers=3)
    x0 = torch.randn(4, 6)
    with torch.no_grad():
        net.weight.zero_()
        torch.testing.assert_close(net(x0), x0)  # w = 0, b = 0: every layer returns its input
        net.bias.copy_(torch.randn(3, 6))
        torch.testing.assert_close(net(x0), x0 + net.bias.sum(0))  # each layer adds its bias


def test_one_layer_matches_the_papers_outer_product_form():
    net = CrossNet(5, num_layers=1)
    with torch.no_grad():
        net.bias.normal_()
    x0 = torch.randn(3, 5, dtype=torch.float32)
    w, b = net.weight[0], net.bias[0]
    outer = x0.unsqueeze(2) * x0.unsqueeze(1)  # (B, d, d): x_0 x_0^T
    expected = outer @ w + b + x0
    torch.testing.assert_close(net(x0), expected)


def test_l_layers_give_crosses_up_to_degree_l_plus_one():
    """With zero biases, each layer multiplies by a linear form of x_0, so scaling x_0 by t scales
    the top-degree part by t^(L+1): f(t x) is a polynomial in t of degree L + 1."""
    torch.manual_seed(0)
    net = CrossNet(4, num_layers=2).double()
    x = torch.randn(1, 4, dtype=torch.float64)
    ts = torch.arange(1, 6, dtype=torch.float64)
    ys = torch.stack([net(t * x)[0, 0] for t in ts])
    vander = torch.stack([ts**k for k in range(5)], dim=1)  # fit degree-4 polynomial exactly
    coef = torch.linalg.solve(vander, ys)
    assert abs(coef[0]) < 1e-8 and abs(coef[4]) < 1e-6  # no constant term, nothing above t^3
    assert abs(coef[3]) > 1e-6  # degree 3 = L + 1 is present


def test_cross_and_deep_outputs_are_concatenated_before_one_logit_layer():
    schema = tiny_schema()  # 6 fields
    model = build_model("DCN", schema, {"embedding_dim": 2, "dnn_hidden_units": [8, 5]})
    assert model.fc.in_features == 6 * 2 + 5
    only_cross = build_model("DCN", schema, {"embedding_dim": 2, "dnn_hidden_units": []})
    assert only_cross.dnn is None and only_cross.fc.in_features == 12
    b = random_batch(schema, 8)
    assert only_cross(b).logits["click"].shape == (8,)


def test_needs_at_least_one_cross_layer():
    with pytest.raises(ValueError, match="num_layers"):
        build_model("DCN", tiny_schema(), {"num_cross_layers": 0})


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "DCN.yaml").read_text())
    model = build_model("DCN", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 418591

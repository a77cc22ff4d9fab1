"""EulerNet: the polar (Euler) transform round trip, orders turn complex products into sums, the
identity layer, the Frappe_x1 config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.euler import EulerInteractionLayer, from_polar, to_polar
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_euler_transform_round_trip():
    torch.manual_seed(0)
    r, p = torch.randn(4, 3, 5, dtype=torch.float64), torch.randn(4, 3, 5, dtype=torch.float64)
    log_lam, theta = to_polar(r, p, eps=0.0)
    z = torch.complex(r, p)
    torch.testing.assert_close(log_lam, torch.log(z.abs()))
    torch.testing.assert_close(theta, z.angle())
    r2, p2 = from_polar(log_lam, theta)
    torch.testing.assert_close(r2, r)
    torch.testing.assert_close(p2, p)


def _zero_implicit(layer):
    with torch.no_grad():
        layer.im.weight.zero_()
        layer.im.bias.zero_()
        layer.bias_lam.zero_()
        layer.bias_theta.zero_()


def test_order_vector_gives_products_of_complex_powers():
    torch.manual_seed(0)
    layer = EulerInteractionLayer(3, 2, 4)
    _zero_implicit(layer)
    with torch.no_grad():
        layer.orders.copy_(torch.tensor([[1.0, 2.0], [1.0, 0.0], [0.0, 0.5]]))
    r, p = torch.randn(5, 3, 4, dtype=torch.float64), torch.randn(5, 3, 4, dtype=torch.float64)
    layer = layer.double()
    out_r, out_p = layer((r, p))  # ReLU(0) = 0: the implicit part vanishes
    z = torch.complex(r, p)
    z0 = z[:, 0] * z[:, 1]
    z1 = z[:, 0].abs() ** 2 * torch.exp(1j * (2 * z[:, 0].angle() + 0.5 * z[:, 2].angle())) * z[:, 2].abs() ** 0.5
    torch.testing.assert_close(torch.complex(out_r, out_p), torch.stack([z0, z1], 1), rtol=1e-6, atol=1e-6)


def test_identity_orders_pass_the_input_through():
    layer = EulerInteractionLayer(4, 4, 3)
    torch.testing.assert_close(layer.orders.detach(), torch.eye(4))
    _zero_implicit(layer)
    r, p = torch.randn(2, 4, 3) + 2.0, torch.randn(2, 4, 3)
    out_r, out_p = layer((r, p))
    torch.testing.assert_close(out_r, r, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_p, p, rtol=1e-4, atol=1e-5)


def test_model_shapes_and_layer_norm_switch():
    schema = tiny_schema()
    m = build_model("EulerNet", schema, {"shape": (5, 4), "layer_norm": True})
    assert [l.num_out for l in m.layers] == [5, 4]
    assert m.reg.in_features == 4 * 10
    assert all(l.norm_r is not None for l in m.layers)
    assert build_model("EulerNet", schema).layers[0].norm_r is None
    assert m(random_batch(schema, 4)).logits["click"].shape == (4,)


def test_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "EulerNet.yaml").read_text())
    config = make_config("EulerNet", cfg["model"]["params"])
    assert (config.shape, config.layer_norm) == ((52,), True)
    assert cfg["training"]["net_regularizer"] == pytest.approx(1e-5)
    assert cfg["bars"] is None

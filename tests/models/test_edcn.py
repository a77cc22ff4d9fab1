"""EDCN: cross and deep towers sharing information through bridge and regulation modules
(Chen et al., CIKM 2021)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.cross import CrossNet
from ctrkit.nn.edcn import BridgeModule, RegulationModule, cross_layer
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_regulation_gates_are_a_softmax_over_fields_repeated_per_coordinate():
    reg = RegulationModule(4, 3, temperature=2.0)
    g1, _ = reg.gates()
    torch.testing.assert_close(g1, torch.full((12,), 0.25))  # uniform at init
    with torch.no_grad():
        reg.g1.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    g1, g2 = reg.gates()
    per_field = g1.view(4, 3)
    assert torch.allclose(per_field, per_field[:, :1].expand(4, 3))  # constant within a field
    torch.testing.assert_close(per_field[:, 0], torch.softmax(torch.tensor([0.0, 0.5, 1.0, 1.5]), 0))
    x = torch.randn(5, 12)
    out1, out2 = reg(x)
    torch.testing.assert_close(out1, x * g1)
    torch.testing.assert_close(out2, x * g2)


def test_cross_layer_steps_reproduce_dcns_cross_network():
    torch.manual_seed(0)
    net = CrossNet(6, 3)
    with torch.no_grad():
        net.bias.normal_()
    x0 = torch.randn(4, 6)
    x = x0
    for l in range(3):
        x = cross_layer(net, l, x0, x)
    torch.testing.assert_close(x, net(x0))


@pytest.mark.parametrize("kind", ["hadamard_product", "pointwise_addition", "concatenation", "attention_pooling"])
def test_bridges(kind):
    torch.manual_seed(1)
    bridge = BridgeModule(5, kind)
    x, h = torch.randn(3, 5), torch.randn(3, 5)
    out = bridge(x, h)
    assert out.shape == (3, 5)
    if kind == "hadamard_product":
        torch.testing.assert_close(out, x * h)
    elif kind == "pointwise_addition":
        torch.testing.assert_close(out, x + h)
    elif kind == "attention_pooling":
        torch.testing.assert_close(out, bridge.attention1(x) * x + bridge.attention2(h) * h)


def test_forward_follows_the_paper_with_and_without_regulation():
    schema = tiny_schema()
    for reg in (True, False):
        model = build_model("EDCN", schema, {"embedding_dim": 2, "num_cross_layers": 2, "use_regulation_module": reg, "temperature": 3.0})
        model.eval()
        b = random_batch(schema, 6)
        with torch.no_grad():
            x = model.embedding(b).flatten(1)
            c, h = model.regulations[0](x) if reg else (x, x)
            c0 = c
            c = cross_layer(model.crossnet, 0, c0, c)
            h = model.dense_layers[0](h)
            br = c * h
            c, h = model.regulations[1](br) if reg else (br, br)
            c = cross_layer(model.crossnet, 1, c0, c)
            h = model.dense_layers[1](h)
            br = c * h
            expected = model.fc(torch.cat([c, h, br], -1)).squeeze(-1)
            torch.testing.assert_close(model(b).logits["click"], expected)


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "EDCN.yaml").read_text())
    model = build_model("EDCN", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 86351

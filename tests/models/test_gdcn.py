"""GDCN: with the gate fixed at one the gated cross layer is DCN-V2's cross layer; the explicit
gated formula; stacked vs parallel; the Frappe_x1 config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.cross import CrossNetV2
from ctrkit.nn.gdcn import GatedCrossNet
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


class _One(torch.nn.Module):
    def forward(self, z):
        return torch.ones_like(z)


def test_gate_fixed_at_one_is_dcnv2_cross_network():
    torch.manual_seed(0)
    gated, v2 = GatedCrossNet(7, 3), CrossNetV2(7, 3)
    gated.gate_activation = _One()
    with torch.no_grad():
        for l, layer in enumerate(v2.layers):
            layer.weight.copy_(gated.w[l].weight)
            layer.bias.copy_(gated.b[l])
    x = torch.randn(5, 7)
    torch.testing.assert_close(gated(x), v2(x))


def test_one_gated_layer_matches_formula():
    torch.manual_seed(0)
    net = GatedCrossNet(6, 1)
    x = torch.randn(4, 6)
    W, Wg, b = net.w[0].weight, net.wg[0].weight, net.b[0]
    expected = x * (x @ W.T + b) * torch.sigmoid(x @ Wg.T) + x
    torch.testing.assert_close(net(x), expected)
    assert ((net.b >= 0) & (net.b < 1)).all()  # uniform [0, 1) bias init as FuxiCTR


@pytest.mark.parametrize("structure, units", [("stacked", ()), ("stacked", (8,)), ("parallel", ()), ("parallel", (8, 4))])
def test_structures_build_and_run(structure, units):
    schema = tiny_schema()
    torch.manual_seed(0)
    m = build_model("GDCN", schema, {"model_structure": structure, "dnn_hidden_units": units})
    assert m(random_batch(schema, 4)).logits["click"].shape == (4,)
    if structure == "parallel":
        assert m.fc.in_features == 6 * 10 + (units[-1] if units else 0)


def test_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "GDCN.yaml").read_text())
    config = make_config("GDCN", cfg["model"]["params"])
    assert config.dnn_hidden_units == (1024, 512, 256)
    assert cfg["bars"] is None

"""xDeepFM: the CIN's shape and recurrence, the CIN-only variant, the BARS Frappe_x1 config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.cin import CompressedInteraction
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_cin_output_width_is_sum_of_layer_sizes():
    cin = CompressedInteraction(num_fields=5, layer_sizes=(3, 7, 2))
    out = cin(torch.randn(4, 5, 6))
    assert cin.output_dim == 12
    assert out.shape == (4, 12)
    assert [m.shape for m in cin.feature_maps(torch.randn(4, 5, 6))] == [(4, 3, 6), (4, 7, 6), (4, 2, 6)]


def test_cin_layer_is_a_compressed_outer_product():
    # Paper's recurrence: X^{k}_{h,:} = sum_{i,j} W^{k,h}_{ij} (X^0_{i,:} * X^{k-1}_{j,:}).
    torch.manual_seed(0)
    F, D = 3, 4
    cin = CompressedInteraction(F, (2, 3))
    x0 = torch.randn(2, F, D)
    x1, x2 = cin.feature_maps(x0)
    w1, b1 = cin.layers[0].weight[:, :, 0], cin.layers[0].bias  # (2, F*F)
    w2, b2 = cin.layers[1].weight[:, :, 0], cin.layers[1].bias  # (3, F*2)
    exp1 = torch.zeros(2, 2, D)
    exp2 = torch.zeros(2, 3, D)
    for h in range(2):
        exp1[:, h] = b1[h] + sum(w1[h, i * F + j] * x0[:, i] * x0[:, j] for i in range(F) for j in range(F))
    for h in range(3):
        exp2[:, h] = b2[h] + sum(w2[h, i * 2 + j] * x0[:, i] * exp1[:, j] for i in range(F) for j in range(2))
    torch.testing.assert_close(x1, exp1)
    torch.testing.assert_close(x2, exp2)
    torch.testing.assert_close(cin(x0), torch.cat([exp1.sum(-1), exp2.sum(-1)], 1))


def test_empty_dnn_leaves_linear_plus_cin():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("xDeepFM", schema, {"dnn_hidden_units": [], "cin_hidden_units": [4, 4]})
    assert model.dnn is None
    b = random_batch(schema, 8)
    model.eval()
    with torch.no_grad():
        expected = model.linear(b) + model.cin_out(model.cin(model.embedding(b))).squeeze(-1)
        torch.testing.assert_close(model(b).logits["click"], expected)


def test_bars_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "xDeepFM.yaml").read_text())
    assert cfg["model"]["name"] == "xDeepFM"
    config = make_config("xDeepFM", cfg["model"]["params"])
    assert config.cin_hidden_units == (64,) and config.dnn_hidden_units == (400, 400, 400)
    assert cfg["bars"] == {"auc": pytest.approx(0.9845), "logloss": pytest.approx(0.1466)}
    assert isinstance(cfg["training"]["net_regularizer"], float)
    schema = tiny_schema()
    out = build_model("xDeepFM", schema, config)(random_batch(schema, 4)).logits["click"]
    assert out.shape == (4,)

"""CrossNet model: DCN's cross network alone (Wang et al., ADKDD 2017, Sec. 2.2)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_zero_cross_weights_reduce_the_model_to_a_linear_layer_on_x0_plus_biases():
    schema = tiny_schema()
    model = build_model("CrossNet", schema, {"embedding_dim": 3, "num_cross_layers": 2})
    model.eval()
    b = random_batch(schema, 8)
    with torch.no_grad():
        model.crossnet.weight.zero_()
        model.crossnet.bias.normal_()
        x0 = model.embedding(b).flatten(1)
        expected = model.fc(x0 + model.crossnet.bias.sum(0)).squeeze(-1)
        torch.testing.assert_close(model(b).logits["click"], expected)


def test_has_no_deep_network():
    model = build_model("CrossNet", tiny_schema(), {"embedding_dim": 2})
    assert model.fc.in_features == 6 * 2
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "CrossNet.yaml").read_text())
    assert cfg["model"]["name"] == "CrossNet"
    model = build_model("CrossNet", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 55191

"""CrossNetV2 model: DCN-V2's cross network alone, x_{l+1} = x_0 * (W_l x_l + b_l) + x_l."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.cross import CrossNetMix
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_one_layer_matches_the_papers_formula():
    schema = tiny_schema()
    model = build_model("CrossNetV2", schema, {"embedding_dim": 2, "num_cross_layers": 1})
    model.eval()
    b = random_batch(schema, 5)
    with torch.no_grad():
        layer = model.crossnet.layers[0]
        layer.bias.normal_()
        x0 = model.embedding(b).flatten(1)
        x1 = x0 * (x0 @ layer.weight.T + layer.bias) + x0
        torch.testing.assert_close(model(b).logits["click"], model.fc(x1).squeeze(-1))


def test_zero_weights_and_biases_make_the_cross_network_identity():
    schema = tiny_schema()
    model = build_model("CrossNetV2", schema, {"embedding_dim": 2, "num_cross_layers": 3})
    b = random_batch(schema, 5)
    with torch.no_grad():
        for layer in model.crossnet.layers:
            layer.weight.zero_()
        x0 = model.embedding(b).flatten(1)
        torch.testing.assert_close(model.crossnet(x0), x0)


def test_low_rank_mixture_is_available():
    model = build_model("CrossNetV2", tiny_schema(), {"use_low_rank_mixture": True, "low_rank": 4, "num_experts": 2})
    assert isinstance(model.crossnet, CrossNetMix)


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "CrossNetV2.yaml").read_text())
    assert cfg["model"]["name"] == "CrossNetV2"
    model = build_model("CrossNetV2", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 94391

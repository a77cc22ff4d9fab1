"""Wide&Deep: logit = wide linear model + deep MLP, trained jointly (Cheng et al., Sec. 3)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"
TINY = {"embedding_dim": 4, "hidden_units": [8], "net_dropout": 0.5, "batch_norm": True}


def test_logit_is_wide_plus_deep():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("WideDeep", schema, TINY).eval()
    b = random_batch(schema, 16)
    with torch.no_grad():
        e = model.embedding(b)
        expected = model.linear(b) + model.mlp(e.flatten(1)).squeeze(-1)
        torch.testing.assert_close(model(b).logits["click"], expected)
    assert model.linear.bias is None  # the bias b of the paper's Eq. 3 is the MLP's output bias


def test_wide_part_is_linear_in_each_feature_weight():
    """Raising the wide weight of one value by delta raises the logit by exactly delta on the rows
    that have that value, and leaves every other row unchanged."""
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("WideDeep", schema, TINY).eval()
    b = random_batch(schema, 32)
    row = int(b.ids[0, 0])  # the fused-table row of example 0's value of c0
    with torch.no_grad():
        before = model(b).logits["click"]
        model.linear.weights.fused.tables[0].weight[row] += 0.75
        after = model(b).logits["click"]
    has_value = (b.ids == row).any(dim=1).float()
    torch.testing.assert_close(after - before, 0.75 * has_value)
    assert has_value.sum() >= 1


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "WideDeep.yaml").read_text())
    model = build_model("WideDeep", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 423280

"""FiBiNET: SENET is a non-negative re-weighting of fields, the bilinear forms per type, the BARS
Frappe_x1 config."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.bilinear import BilinearInteraction, SqueezeExcitation
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_senet_reweights_each_field_by_a_non_negative_weight(act):
    torch.manual_seed(0)
    se = SqueezeExcitation(num_fields=7, reduction_ratio=3, excitation_activation=act)
    assert se.excitation[0].out_features == 2  # max(1, 7 // 3) bottleneck units
    e = torch.randn(16, 7, 5)
    w = se.field_weights(e)
    assert w.shape == (16, 7)
    if act == "relu":
        assert (w >= 0).all()
    else:
        assert ((w > 0) & (w < 1)).all()
    torch.testing.assert_close(se(e), e * w.unsqueeze(-1))


@pytest.mark.parametrize("kind", ["field_all", "field_each", "field_interaction"])
def test_bilinear_matches_pairwise_definition(kind):
    torch.manual_seed(0)
    F, D = 4, 3
    layer = BilinearInteraction(F, D, kind)
    e = torch.randn(2, F, D)
    out = layer(e)
    assert out.shape == (2, F * (F - 1) // 2, D)
    for p, (i, j) in enumerate(combinations(range(F), 2)):
        # field_all: one W; field_each: W of the left field i; field_interaction: W of pair p
        W = {"field_all": lambda: layer.weight, "field_each": lambda: layer.weight[i], "field_interaction": lambda: layer.weight[p]}[kind]()
        torch.testing.assert_close(out[:, p], (e[:, i] @ W) * e[:, j])


def test_bilinear_parameter_counts_per_type():
    F, D = 5, 4
    sizes = {k: BilinearInteraction(F, D, k).weight.numel() for k in ("field_all", "field_each", "field_interaction")}
    assert sizes == {"field_all": D * D, "field_each": F * D * D, "field_interaction": 10 * D * D}


def test_bars_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "FiBiNET.yaml").read_text())
    config = make_config("FiBiNET", cfg["model"]["params"])
    assert (config.bilinear_type, config.reduction_ratio) == ("field_all", 2)
    assert cfg["bars"] == {"auc": pytest.approx(0.9832), "logloss": pytest.approx(0.1941)}
    schema = tiny_schema()
    model = build_model("FiBiNET", schema, config)
    F = model.embedding.num_fields
    assert model.dnn.net[0].in_features == F * (F - 1) * 10
    assert model(random_batch(schema, 4)).logits["click"].shape == (4,)

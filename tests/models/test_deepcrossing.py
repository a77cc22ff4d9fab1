"""Deep Crossing: residual units ReLU(F(x) + x) that keep the input size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.models.deepcrossing import ResidualUnit
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def scale_up(model) -> None:
    """Replace the 1e-4 embedding init by N(0, 1) so interaction terms are not negligible."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embedding" in name or "numeric_weight" in name:
                p.normal_()

def zero_(unit: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in unit.parameters():
            p.zero_()


def test_residual_unit_with_zero_weights_is_identity_on_relu_outputs():
    unit = ResidualUnit(12, 5)
    zero_(unit)
    x = torch.randn(4, 12)
    torch.testing.assert_close(unit(x.relu()), x.relu())  # identity on non-negative inputs
    torch.testing.assert_close(unit(x), x.relu())  # ReLU(0 + x) in general
    plain = ResidualUnit(12, 5, use_residual=False)
    zero_(plain)
    assert torch.equal(plain(x), torch.zeros(4, 12))


def test_residual_unit_is_relu_of_two_layer_map_plus_input():
    torch.manual_seed(0)
    unit = ResidualUnit(6, 3)
    x = torch.randn(5, 6)
    expected = torch.relu(unit.fc_out(torch.relu(unit.fc_in(x))) + x)
    torch.testing.assert_close(unit(x), expected)


def test_units_keep_the_embedding_width():
    schema = tiny_schema()
    model = build_model("DeepCrossing", schema, {"embedding_dim": 4, "residual_blocks": [7, 9]})
    for unit in model.units:
        assert unit.fc_in.in_features == unit.fc_out.out_features == 6 * 4
    assert [u.fc_in.out_features for u in model.units] == [7, 9]


def test_frappe_config_is_untuned_but_valid():
    cfg = yaml.safe_load((BARS / "DeepCrossing.yaml").read_text())
    assert cfg["bars"] is None
    assert make_config("DeepCrossing", cfg["model"]["params"]) == make_config("DeepCrossing", {})

"""FinalNet: factorized interaction and block shapes, the identity gate at init, one-block vs
two-block outputs and the distillation loss, the BARS Frappe_x1 config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.final import FactorizedInteraction, FieldGate, FinalBlock
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


@pytest.mark.parametrize("residual", ["concat", "sum"])
def test_factorized_interaction_is_half_times_half(residual):
    torch.manual_seed(0)
    layer = FactorizedInteraction(7, 6, residual_type=residual)
    assert layer.linear.out_features == (6 if residual == "concat" else 12)
    x = torch.randn(4, 7)
    h2, h1 = layer.linear(x).chunk(2, dim=-1)
    expected = torch.cat([h2, h1 * h2], -1) if residual == "concat" else h2 + h1 * h2
    out = layer(x)
    assert out.shape == (4, 6)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("residual", ["concat", "sum"])
def test_block_output_shape_is_last_hidden_size(residual):
    block = FinalBlock(12, (8, 4), activation_name="relu", dropout=0.1, residual_type=residual)
    assert block.output_dim == 4
    assert block(torch.randn(5, 12)).shape == (5, 4)


def test_concat_residual_needs_even_sizes():
    with pytest.raises(ValueError, match="even"):
        FactorizedInteraction(4, 5, residual_type="concat")


def test_field_gate_starts_as_identity_gate():
    gate = FieldGate(3)
    e = torch.randn(2, 3, 4)
    torch.testing.assert_close(gate(e), torch.cat([e, e], dim=1))


def test_one_block_model_has_no_second_block_or_aux_loss():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("FinalNet", schema, {"block_type": "1B", "use_feature_gating": True})
    assert model.block2 is None
    assert model.block1.net[0].linear.in_features == 2 * 6 * 10  # gated: raw + gated fields
    model.train()
    out = model(random_batch(schema, 8))
    assert out.aux_loss is None
    torch.testing.assert_close(out.logits["click"], out.extras["block1_logit"])


def test_two_block_logit_is_mean_and_blocks_are_distilled():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("FinalNet", schema)
    b = random_batch(schema, 16)
    model.train()
    out = model(b)
    y1, y2, y = out.extras["block1_logit"], out.extras["block2_logit"], out.logits["click"]
    assert y1.shape == y2.shape == y.shape == (16,)
    torch.testing.assert_close(y, 0.5 * (y1 + y2))
    p = torch.sigmoid(y).detach()
    expected = F.binary_cross_entropy_with_logits(y1, p) + F.binary_cross_entropy_with_logits(y2, p)
    torch.testing.assert_close(out.aux_loss, expected)
    model.eval()
    assert model(b).aux_loss is None


def test_bars_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "FinalNet.yaml").read_text())
    config = make_config("FinalNet", cfg["model"]["params"])
    assert (config.block_type, config.use_feature_gating) == ("2B", True)
    assert (config.block1_hidden_units, config.block2_hidden_units) == ((400, 400), (400,))
    assert cfg["bars"] == {"auc": pytest.approx(0.9857), "logloss": pytest.approx(0.1311)}
    schema = tiny_schema()
    assert build_model("FinalNet", schema, config)(random_batch(schema, 4)).logits["click"].shape == (4,)

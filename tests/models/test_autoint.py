"""AutoInt / AutoInt+: attention is a distribution over fields, the one-field reduction, the two
registered variants, the BARS Frappe_x1 configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, get_model_info, make_config
from ctrkit.nn.attention import MultiHeadSelfAttention
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_attention_weights_over_fields_sum_to_one():
    torch.manual_seed(0)
    layer = MultiHeadSelfAttention(6, 8, num_heads=2, use_scale=True)
    a = layer.attention_weights(torch.randn(3, 5, 6))
    assert a.shape == (3, 2, 5, 5)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 2, 5))
    assert layer(torch.randn(3, 5, 6)).shape == (3, 5, 8)


@pytest.mark.parametrize("input_dim", [6, 8])
def test_one_field_reduces_to_value_projection_plus_residual(input_dim):
    # With a single field the softmax puts weight 1 on it: out = ReLU(x W_v + residual).
    torch.manual_seed(0)
    layer = MultiHeadSelfAttention(input_dim, 8, num_heads=4)
    x = torch.randn(5, 1, input_dim)
    residual = layer.w_res(x) if layer.w_res is not None else x
    assert (layer.w_res is None) == (input_dim == 8)
    torch.testing.assert_close(layer(x), torch.relu(layer.w_v(x) + residual))


def test_heads_must_divide_attention_dim():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadSelfAttention(4, 10, num_heads=3)


def test_autoint_and_autoint_plus_are_separate_models():
    assert get_model_info("AutoInt").config_class().dnn_hidden_units == ()
    assert get_model_info("AutoInt+").config_class().dnn_hidden_units == (64, 64, 64)
    schema = tiny_schema()
    torch.manual_seed(0)
    plain, plus = build_model("AutoInt", schema), build_model("AutoInt+", schema)
    assert plain.dnn is None and plain.linear is None
    assert plus.dnn is not None
    b = random_batch(schema, 8)
    plain.eval()
    with torch.no_grad():
        expected = plain.fc(plain.attention(plain.embedding(b)).flatten(1)).squeeze(-1)
        torch.testing.assert_close(plain(b).logits["click"], expected)


@pytest.mark.parametrize(
    "name, file, auc, logloss", [("AutoInt", "AutoInt.yaml", 0.9831, 0.1637), ("AutoInt+", "AutoIntPlus.yaml", 0.9848, 0.1490)]
)
def test_bars_frappe_configs_build(name, file, auc, logloss):
    cfg = yaml.safe_load((BARS / file).read_text())
    assert cfg["model"]["name"] == name
    config = make_config(name, cfg["model"]["params"])
    assert (config.attention_dim, config.num_heads) == (128, 4)
    assert cfg["bars"] == {"auc": pytest.approx(auc), "logloss": pytest.approx(logloss)}
    schema = tiny_schema()
    assert build_model(name, schema, config)(random_batch(schema, 4)).logits["click"].shape == (4,)

"""DESTINE: pairwise and unary attention weights are each distributions over fields, whitening
makes the pairwise term shift invariant, the residual modes, the BARS Frappe_x1 config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.destine import DisentangledSelfAttention
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_pair_and_unary_weights_sum_to_one():
    torch.manual_seed(0)
    layer = DisentangledSelfAttention(6, 8, 2, dropout=0.0, use_scale=True)
    pair, unary = layer.attention_weights(torch.randn(3, 5, 6))
    assert pair.shape == (3, 2, 5, 5) and unary.shape == (3, 2, 1, 5)
    assert (pair >= 0).all() and (unary >= 0).all()
    torch.testing.assert_close(pair.sum(-1), torch.ones(3, 2, 5))
    torch.testing.assert_close(unary.sum(-1), torch.ones(3, 2, 1))


def test_forward_matches_explicit_single_head():
    torch.manual_seed(0)
    layer = DisentangledSelfAttention(4, 6, 1, dropout=0.0)
    x = torch.randn(2, 5, 4)
    q, k, v = layer.w_q(x), layer.w_k(x), layer.w_v(x)
    q, k = q - q.mean(1, keepdim=True), k - k.mean(1, keepdim=True)
    pair = torch.softmax(q @ k.transpose(1, 2), -1)
    unary = torch.softmax(layer.w_unary(x), dim=1).transpose(1, 2)  # (B, 1, F)
    expected = (pair + unary) @ v + layer.w_res(x)
    torch.testing.assert_close(layer(x), expected)


def test_whitening_makes_pair_weights_invariant_to_query_bias():
    torch.manual_seed(0)
    layer = DisentangledSelfAttention(4, 6, 1, dropout=0.0)
    x = torch.randn(2, 5, 4)
    before = layer.attention_weights(x)[0]
    with torch.no_grad():
        layer.w_q.bias.add_(3.0)
        layer.w_k.bias.sub_(2.0)
    torch.testing.assert_close(layer.attention_weights(x)[0], before)


@pytest.mark.parametrize("mode", ["each_layer", "last_layer", "none"])
def test_residual_modes(mode):
    schema = tiny_schema()
    m = build_model("DESTINE", schema, {"residual_mode": mode, "use_wide": False})
    assert (m.w_res is not None) == (mode == "last_layer")
    assert all((l.w_res is not None) == (mode == "each_layer") for l in m.attention)
    assert m(random_batch(schema, 4)).logits["click"].shape == (4,)


def test_bars_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "DESTINE.yaml").read_text())
    config = make_config("DESTINE", cfg["model"]["params"])
    assert (config.attention_layers, config.attention_dim, config.num_heads, config.use_wide) == (4, 128, 1, False)
    assert cfg["bars"] == {"auc": pytest.approx(0.9856), "logloss": pytest.approx(0.1434)}
    schema = tiny_schema()
    assert build_model("DESTINE", schema, config)(random_batch(schema, 4)).logits["click"].shape == (4,)

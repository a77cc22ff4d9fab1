"""InterHAt: attention and aggregation weights are distributions, the hierarchical recursion
against an explicit loop, the Frappe_x1 config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.interhat import AttentionalAggregation, TransformerSelfAttention
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_attention_and_aggregation_weights_sum_to_one():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8)
    att = TransformerSelfAttention(8, 4, num_heads=2)
    a = att.attention_weights(x)
    assert a.shape == (3, 2, 5, 5)
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 2, 5))
    assert att(x).shape == (3, 5, 8) and att.w_o is None
    agg = AttentionalAggregation(8)
    w = agg.weights(x)
    assert w.shape == (3, 5, 1) and (w >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(3, 1))
    torch.testing.assert_close(agg(x), (w * x).sum(1))


def test_attention_output_is_layernormed_residual():
    torch.manual_seed(0)
    att = TransformerSelfAttention(6, 3, num_heads=1)  # 3 != 6: output projection back to 6
    x = torch.randn(2, 4, 6)
    a = att.attention_weights(x)
    heads = a[:, 0] @ att.attention.w_v(x)
    expected = att.norm(x + torch.relu(att.w_o(heads)))
    torch.testing.assert_close(att(x), expected)


def test_hierarchy_matches_explicit_recursion():
    schema = tiny_schema()
    torch.manual_seed(0)
    m = build_model("InterHAt", schema, {"order": 3})
    m.eval()
    b = random_batch(schema, 4)
    with torch.no_grad():
        x1 = m.feedforward(m.attention(m.embedding(b)))
        u1 = m.aggregation[0](x1)
        x2 = u1[:, None] * x1 + x1
        u2 = m.aggregation[1](x2)
        x3 = u2[:, None] * x1 + x2
        u3 = m.aggregation[2](x3)
        expected = m.mlp(m.final_aggregation(torch.stack([u1, u2, u3], 1))).squeeze(-1)
        torch.testing.assert_close(m(b).logits["click"], expected)


def test_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "InterHAt.yaml").read_text())
    config = make_config("InterHAt", cfg["model"]["params"])
    assert (config.order, config.hidden_dim) == (3, None)
    assert cfg["bars"] is None

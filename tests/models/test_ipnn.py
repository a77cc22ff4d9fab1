"""IPNN: the product layer's quadratic signals are the inner products of field pairs (Qu et al.)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.interactions import InnerProductPairs
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_inner_products_equal_explicit_pairwise_dot_products_in_order():
    e = torch.randn(3, 5, 4, dtype=torch.float64)
    layer = InnerProductPairs(5)
    expected = torch.stack([(e[:, i] * e[:, j]).sum(-1) for i in range(5) for j in range(i + 1, 5)], dim=1)
    assert layer.num_pairs == 10
    torch.testing.assert_close(layer(e), expected)
    assert list(layer.state_dict()) == []  # index buffers are rebuilt, never saved


def test_mlp_sees_flat_embeddings_and_pair_products():
    schema = tiny_schema()  # 4 categorical + 2 numeric = 6 fields -> 15 pairs
    torch.manual_seed(0)
    model = build_model("IPNN", schema, {"embedding_dim": 3, "hidden_units": [8]}).eval()
    assert model.mlp.net[0].in_features == 6 * 3 + 15
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = model.embedding(b)
        pairs = torch.stack([(e[:, i] * e[:, j]).sum(-1) for i in range(6) for j in range(i + 1, 6)], dim=1)
        expected = model.mlp(torch.cat([e.flatten(1), pairs], dim=1)).squeeze(-1)
        torch.testing.assert_close(model(b).logits["click"], expected)


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "IPNN.yaml").read_text())
    model = build_model("IPNN", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 433491

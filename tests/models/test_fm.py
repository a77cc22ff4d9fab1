"""FM: the pairwise term is Rendle's double sum over field pairs, computed in linear time."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.interactions import FMInteraction, bi_interaction
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def explicit_pairwise(e: torch.Tensor) -> torch.Tensor:
    """sum_{i<j} <e_i, e_j> by two loops: e (B, F, D) -> (B,)."""
    F = e.shape[1]
    out = torch.zeros(e.shape[0], dtype=e.dtype)
    for i in range(F):
        for j in range(i + 1, F):
            out = out + (e[:, i] * e[:, j]).sum(-1)
    return out


def test_pairwise_term_equals_explicit_double_sum():
    e = torch.randn(5, 7, 3, dtype=torch.float64)
    torch.testing.assert_close(FMInteraction()(e), explicit_pairwise(e))
    # The vector form keeps the embedding axis: sum over pairs of element-wise products.
    expected = sum(e[:, i] * e[:, j] for i in range(7) for j in range(i + 1, 7))
    torch.testing.assert_close(bi_interaction(e), expected)


def test_single_field_has_no_pairs():
    assert torch.equal(FMInteraction()(torch.randn(4, 1, 3)), torch.zeros(4))


def test_fm_logit_is_first_order_plus_pairwise_over_all_field_kinds():
    schema = tiny_schema(sequence=True)  # categorical, numeric and pooled-sequence fields
    torch.manual_seed(0)
    model = build_model("FM", schema, {"embedding_dim": 4}).eval()
    with torch.no_grad():  # scale the 1e-4 init up so the pairwise term is not negligible
        model.embedding.fused.tables[0].weight.normal_()
        model.embedding.numeric_weight.normal_()
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = model.embedding(b)
        expected = model.linear(b) + explicit_pairwise(e)
        got = model(b).logits["click"]
    assert e.shape == (8, 4 + 2 + 1, 4)
    torch.testing.assert_close(got, expected)
    assert explicit_pairwise(e).abs().max() > 0.1


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "FM.yaml").read_text())
    model = build_model("FM", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 59280

"""AFM: attention over pair interactions; uniform attention is the projected mean of the pairs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.interactions import FMInteraction
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


def test_uniform_attention_is_projected_mean_of_pair_products():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("AFM", schema, {"embedding_dim": 4, "attention_dim": 5}).eval()
    scale_up(model)
    with torch.no_grad():
        model.pooling.h.weight.zero_()  # every pair scores 0 -> softmax is uniform
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = model.embedding(b)
        F = e.shape[1]
        products = torch.stack([e[:, i] * e[:, j] for i in range(F) for j in range(i + 1, F)], 1)
        a = model.pooling.weights(products)
        torch.testing.assert_close(a, torch.full_like(a, 1.0 / products.shape[1]))
        expected = model.linear(b) + model.pooling.p(products.mean(1)).squeeze(-1)
        torch.testing.assert_close(model(b).logits["click"], expected)


def test_attention_weights_are_a_distribution_over_pairs():
    schema = tiny_schema()
    model = build_model("AFM", schema, {"embedding_dim": 4}).eval()
    scale_up(model)
    with torch.no_grad():
        a = model.pooling.weights(model.pairs(model.embedding(random_batch(schema, 8))))
    torch.testing.assert_close(a.sum(1), torch.ones(8))


def test_without_attention_is_fm():
    schema = tiny_schema()
    model = build_model("AFM", schema, {"embedding_dim": 4, "use_attention": False}).eval()
    assert model.pooling is None
    scale_up(model)
    b = random_batch(schema, 8)
    with torch.no_grad():
        expected = model.linear(b) + FMInteraction()(model.embedding(b))
        torch.testing.assert_close(model(b).logits["click"], expected)


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "AFM.yaml").read_text())
    model = build_model("AFM", frappe_like_schema(), cfg["model"]["params"])
    assert n_params(model) == 60826
    assert cfg["bars"] == {"auc": pytest.approx(0.9697), "logloss": pytest.approx(0.2264)}

"""AOANet: generalized interaction layers beside a DNN (Lang et al., KDD 2021)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.aoanet import GeneralizedInteraction
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def outer_product_form(layer: GeneralizedInteraction, b0: torch.Tensor, bi: torch.Tensor) -> torch.Tensor:
    """The layer as written with explicit D x D outer products (FuxiCTR's computation)."""
    B, Fn, D = b0.shape
    S = bi.shape[1]
    outer = torch.einsum("bnh,bnd->bnhd", b0.repeat(1, S, 1), bi.repeat(1, 1, Fn).view(B, -1, D))
    fusion = torch.matmul(outer.permute(0, 2, 3, 1), layer.alpha)  # (B, D, D, S_out)
    fusion = layer.W * fusion.permute(0, 3, 1, 2)
    return torch.matmul(fusion, layer.h).squeeze(-1)


def test_generalized_interaction_equals_the_explicit_outer_product_form():
    torch.manual_seed(0)
    layer = GeneralizedInteraction(3, 2, 4, 5).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    b0 = torch.randn(2, 4, 5, dtype=torch.float64)
    bi = torch.randn(2, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(b0, bi), outer_product_form(layer, b0, bi))


def test_initial_layer_sums_all_pairwise_products():
    """At init (W = I, alpha = h = 1) output o is sum_{f,s} b0_f * bi_s: every pair's product."""
    layer = GeneralizedInteraction(3, 2, 3, 4)
    b0, bi = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    expected = b0.sum(1) * bi.sum(1)
    out = layer(b0, bi)
    torch.testing.assert_close(out[:, 0], expected)
    torch.testing.assert_close(out[:, 1], expected)


def test_model_concatenates_dnn_and_flattened_subspaces():
    schema = tiny_schema()
    model = build_model("AOANet", schema, {"embedding_dim": 3, "dnn_hidden_units": [8, 5], "num_interaction_layers": 2, "num_subspaces": 3})
    assert model.fc.in_features == 5 + 3 * 3
    model.eval()
    b = random_batch(schema, 4)
    with torch.no_grad():
        e = model.embedding(b)
        z = torch.cat([model.dnn(e.flatten(1)), model.gin(e).flatten(1)], -1)
        torch.testing.assert_close(model(b).logits["click"], model.fc(z).squeeze(-1))


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "AOANet.yaml").read_text())
    model = build_model("AOANet", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 418331

"""CIN model: xDeepFM's linear part plus CIN, no DNN (Lian et al., KDD 2018)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_logit_is_linear_term_plus_cin_output_unit():
    schema = tiny_schema()
    model = build_model("CIN", schema, {"embedding_dim": 3, "cin_hidden_units": [4, 2]})
    model.eval()
    b = random_batch(schema, 6)
    with torch.no_grad():
        e = model.embedding(b)
        # First CIN layer by hand: Z[b, i, j, :] = e_i * e_j, compressed by the 1x1 convolution.
        conv = model.cin.layers[0]
        z = (e.unsqueeze(2) * e.unsqueeze(1)).reshape(6, -1, 3)  # (B, F*F, D)
        x1 = torch.einsum("hc,bcd->bhd", conv.weight[:, :, 0], z) + conv.bias[None, :, None]
        torch.testing.assert_close(model.cin.feature_maps(e)[0], x1)
        expected = model.linear(b) + model.cin_out(model.cin(e)).squeeze(-1)
        torch.testing.assert_close(model(b).logits["click"], expected)
        model.cin_out.weight.zero_()
        model.cin_out.bias.zero_()
        torch.testing.assert_close(model(b).logits["click"], model.linear(b))  # only LR left


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "CIN.yaml").read_text())
    assert cfg["model"]["name"] == "CIN"
    model = build_model("CIN", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 147984

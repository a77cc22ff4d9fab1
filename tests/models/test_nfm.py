"""NFM: the MLP reads the bi-interaction vector, FM's pairwise sum before the reduction over D."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.interactions import FMInteraction, bi_interaction
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


def test_bi_interaction_is_fm_before_reduction():
    torch.manual_seed(0)
    e = torch.randn(5, 6, 4, dtype=torch.float64)
    expected = sum(e[:, i] * e[:, j] for i in range(6) for j in range(i + 1, 6))
    torch.testing.assert_close(bi_interaction(e), expected)
    torch.testing.assert_close(bi_interaction(e).sum(-1), FMInteraction()(e))


def test_logit_is_linear_plus_mlp_of_bi_interaction():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    model = build_model("NFM", schema, {"embedding_dim": 4, "hidden_units": [8], "net_dropout": 0.3}).eval()
    scale_up(model)
    assert model.mlp.net[0].in_features == 4  # the MLP sees one D-vector, not F*D
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = model.embedding(b)
        F = e.shape[1]
        bi = sum(e[:, i] * e[:, j] for i in range(F) for j in range(i + 1, F))
        expected = model.linear(b) + model.mlp(bi).squeeze(-1)
        torch.testing.assert_close(model(b).logits["click"], expected, rtol=1e-5, atol=1e-5)
    assert model.linear.bias is None  # the MLP's output layer holds the bias


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "NFM.yaml").read_text())
    model = build_model("NFM", frappe_like_schema(), cfg["model"]["params"])
    assert n_params(model) == 384880
    assert cfg["bars"] == {"auc": pytest.approx(0.9804), "logloss": pytest.approx(0.2058)}

"""FmFM: <e_i M_ij, e_j> per field pair; identity matrices recover FM, scaled ones recover FwFM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.fm_family import FieldMatrixedInteraction
from ctrkit.nn.interactions import FMInteraction, InnerProductPairs
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


def test_identity_matrices_equal_fm_and_scaled_ones_equal_fwfm():
    torch.manual_seed(0)
    e = torch.randn(5, 6, 4)
    layer = FieldMatrixedInteraction(6, 4, "matrixed")
    with torch.no_grad():
        layer.weight.copy_(torch.eye(4).expand(15, 4, 4))
    torch.testing.assert_close(layer(e), FMInteraction()(e))
    r = torch.randn(15)
    with torch.no_grad():
        layer.weight.copy_(r[:, None, None] * torch.eye(4))
    torch.testing.assert_close(layer(e), InnerProductPairs(6)(e) @ r)


def test_vectorized_is_diagonal_matrixed():
    torch.manual_seed(1)
    e = torch.randn(5, 6, 4)
    vec = FieldMatrixedInteraction(6, 4, "vectorized")
    mat = FieldMatrixedInteraction(6, 4, "matrixed")
    with torch.no_grad():
        mat.weight.copy_(torch.diag_embed(vec.weight))
    torch.testing.assert_close(vec(e), mat(e))


def test_model_logit_is_linear_plus_interaction():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("FmFM", schema, {"embedding_dim": 3}).eval()
    scale_up(model)
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = model.embedding(b)
        F = e.shape[1]
        W = model.interaction.weight
        pairs = [(i, j) for i in range(F) for j in range(i + 1, F)]
        explicit = sum(((e[:, i] @ W[k]) * e[:, j]).sum(-1) for k, (i, j) in enumerate(pairs))
        torch.testing.assert_close(model(b).logits["click"], model.linear(b) + explicit)


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "FmFM.yaml").read_text())
    model = build_model("FmFM", frappe_like_schema(), cfg["model"]["params"])
    assert n_params(model) == 59730
    assert cfg["bars"] == {"auc": pytest.approx(0.9749), "logloss": pytest.approx(0.2004)}

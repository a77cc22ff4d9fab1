"""LorentzFM: pairs scored by the triangle-inequality score of points on the hyperboloid."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
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

def lorentz_inner(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """<u, v>_L = -u0 v0 + <u, v> for points lifted onto the hyperboloid u0 = sqrt(1 + |u|^2)."""
    u0 = torch.sqrt(1 + (u * u).sum(-1))
    v0 = torch.sqrt(1 + (v * v).sum(-1))
    return (u * v).sum(-1) - u0 * v0, u0, v0


def test_logit_is_sum_of_triangle_scores_from_the_lorentz_inner_product():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    model = build_model("LorentzFM", schema, {"embedding_dim": 3}).eval()
    scale_up(model)
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = model.embedding(b)
        F = e.shape[1]
        expected = torch.zeros(8)
        for i in range(F):
            for j in range(i + 1, F):
                ip, u0, v0 = lorentz_inner(e[:, i], e[:, j])
                expected = expected + (1 - ip - u0 - v0) / (u0 * v0)
        torch.testing.assert_close(model(b).logits["click"], expected)


def test_points_lie_on_the_hyperboloid_and_origin_scores_zero():
    u = torch.randn(6, 4, dtype=torch.float64)
    ip, _, _ = lorentz_inner(u, u)
    torch.testing.assert_close(ip, torch.full((6,), -1.0, dtype=torch.float64))  # <u, u>_L = -1
    schema = tiny_schema()
    model = build_model("LorentzFM", schema, {"embedding_dim": 3}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        out = model(random_batch(schema, 4)).logits["click"]
    torch.testing.assert_close(out, torch.zeros(4))  # T(origin, origin) = 0


def test_only_embeddings_are_learned():
    model = build_model("LorentzFM", frappe_like_schema(), {"embedding_dim": 10})
    assert n_params(model) == 5389 * 10


def test_frappe_config_is_untuned_but_valid():
    cfg = yaml.safe_load((BARS / "LorentzFM.yaml").read_text())
    assert cfg["bars"] is None
    assert make_config("LorentzFM", cfg["model"]["params"]) == make_config("LorentzFM", {})

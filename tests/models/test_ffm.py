"""FFM: a distinct latent vector per (field, other field); one fused lookup serves them all."""

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


def test_each_field_pair_has_its_own_vectors():
    schema = tiny_schema()  # 4 categorical + 2 numeric fields
    torch.manual_seed(0)
    model = build_model("FFM", schema, {"embedding_dim": 3}).eval()
    scale_up(model)
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = model.embedding(b)  # (B, F, F-1, D)
        F = e.shape[1]
        assert e.shape == (8, 6, 5, 3)

        def slot(i, j):
            return j if j < i else j - 1

        explicit = {(i, j): (e[:, i, slot(i, j)] * e[:, j, slot(j, i)]).sum(-1) for i in range(F) for j in range(i + 1, F)}
        got = model(b).logits["click"]
        torch.testing.assert_close(got, model.linear(b) + sum(explicit.values()))
        # Perturb field 1's vector that faces field 3: only the (1, 3) term moves.
        terms = model.pairs(e).sum(-1)  # (B, P)
        e2 = e.clone()
        e2[:, 1, slot(1, 3)] += 1.0
        terms2 = model.pairs(e2).sum(-1)
        pairs = [(i, j) for i in range(F) for j in range(i + 1, F)]
        changed = (terms2 - terms).abs().amax(0) > 1e-6
        assert [p for p, c in zip(pairs, changed) if c] == [(1, 3)]


def test_field_aware_table_is_one_fused_lookup():
    schema = tiny_schema(num_numeric=0)
    model = build_model("FFM", schema, {"embedding_dim": 2})
    tables = [m for m in model.embedding.modules() if isinstance(m, torch.nn.Embedding)]
    assert len(tables) == 1 and tables[0].embedding_dim == 2 * 3  # (F - 1) * D, F = 4


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "FFM.yaml").read_text())
    model = build_model("FFM", frappe_like_schema(), cfg["model"]["params"])
    assert n_params(model) == 490400
    assert cfg["bars"] == {"auc": pytest.approx(0.9786), "logloss": pytest.approx(0.186)}

"""ONN: per-operation embeddings: a copy slot per field plus FFM's field-aware inner products."""

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

def test_mlp_reads_copied_embeddings_and_field_aware_inner_products():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("ONN", schema, {"embedding_dim": 3, "hidden_units": [8]}).eval()
    scale_up(model)
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = model.embedding(b)  # (B, F, F, D)
        F = e.shape[1]
        assert e.shape == (8, 6, 6, 3)
        copies = torch.cat([e[:, i, i] for i in range(F)], dim=1)
        inner = torch.stack([(e[:, i, j] * e[:, j, i]).sum(-1) for i in range(F) for j in range(i + 1, F)], 1)
        expected = model.mlp(torch.cat([copies, inner], 1)).squeeze(-1)
        torch.testing.assert_close(model(b).logits["click"], expected)
        # Field 2's vector facing field 4 only enters the (2, 4) inner product.
        e2 = e.clone()
        e2[:, 2, 4] += 1.0
        changed = (model.pairs(e2).sum(-1) - model.pairs(e).sum(-1)).abs().amax(0) > 1e-6
        pairs = [(i, j) for i in range(F) for j in range(i + 1, F)]
        assert [p for p, c in zip(pairs, changed) if c] == [(2, 4)]


def test_one_fused_table_of_width_f_times_d():
    model = build_model("ONN", frappe_like_schema(), {})
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    assert len(tables) == 1 and tables[0].weight.shape == (5389, 10 * 2)
    assert model.mlp.net[0].in_features == 10 * 2 + 45


def test_frappe_config_is_untuned_but_valid():
    cfg = yaml.safe_load((BARS / "ONN.yaml").read_text())
    assert cfg["bars"] is None
    assert make_config("ONN", cfg["model"]["params"]) == make_config("ONN", {})

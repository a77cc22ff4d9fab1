"""DeepFM: one set of embeddings; logit = first-order + FM pairwise + MLP (Guo et al., Sec. 2.1)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"
TINY = {"embedding_dim": 4, "hidden_units": [8, 8], "net_dropout": 0.2, "batch_norm": True}


def test_logit_is_linear_plus_fm_plus_dnn():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("DeepFM", schema, TINY).eval()  # eval: dropout off, batch norm frozen
    with torch.no_grad():
        model.embedding.fused.tables[0].weight.normal_()
    b = random_batch(schema, 16)
    with torch.no_grad():
        e = model.embedding(b)  # (B, F, D)
        F = e.shape[1]
        fm = sum((e[:, i] * e[:, j]).sum(-1) for i in range(F) for j in range(i + 1, F))
        dnn = model.mlp(e.flatten(1)).squeeze(-1)
        expected = model.linear(b) + fm + dnn
        got = model(b).logits["click"]
    torch.testing.assert_close(got, expected)
    # Each part contributes: dropping any one of them changes the logit.
    for part in (model.linear(b), fm, dnn):
        assert not torch.allclose(got, expected - part)


def test_fm_and_dnn_share_one_embedding_table():
    model = build_model("DeepFM", tiny_schema(), TINY)
    tables = [m for m in model.modules() if isinstance(m, FeatureEmbedding) and m.dim == 4]
    assert len(tables) == 1  # the other FeatureEmbedding is the first-order term's dim-1 weights
    assert model.linear.bias is None  # the single global bias is the MLP's output bias


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "DeepFM.yaml").read_text())
    model = build_model("DeepFM", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 423280

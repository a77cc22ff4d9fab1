"""DLRM: bottom MLP for dense features, pairwise dot interactions, top MLP (Naumov et al., 2019)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_dot_interaction_equals_explicit_pairwise_dot_products():
    schema = tiny_schema(num_categorical=3, num_numeric=2)
    model = build_model("DLRM", schema, {"embedding_dim": 4, "bottom_mlp_units": [5], "top_mlp_units": [6]})
    model.eval()
    b = random_batch(schema, 7)
    with torch.no_grad():
        v, dense = model.vectors(b)
        assert v.shape == (7, 4, 4)  # 3 categorical embeddings + the bottom-MLP vector
        torch.testing.assert_close(v[:, -1], dense)
        torch.testing.assert_close(v[:, :3], model.embedding(b.ids))
        dots = [(v[:, i] * v[:, j]).sum(-1) for i in range(4) for j in range(i + 1, 4)]
        z = torch.cat([torch.stack(dots, 1), dense], dim=-1)  # paper: dots, then the dense vector
        assert model.top_mlp.net[0].in_features == 6 + 4
        torch.testing.assert_close(model(b).logits["click"], model.top_mlp(z).squeeze(-1))


def test_bottom_mlp_reads_the_raw_dense_features_and_ends_in_an_activation():
    schema = tiny_schema(num_categorical=2, num_numeric=3)
    model = build_model("DLRM", schema, {"embedding_dim": 4, "bottom_mlp_units": []})
    b = random_batch(schema, 5)
    with torch.no_grad():
        lin = model.bottom_mlp[0].net[0]
        assert lin.in_features == 3 and lin.out_features == 4
        torch.testing.assert_close(model.vectors(b)[1], torch.relu(lin(b.dense)))


def test_cat_interaction_flattens_the_vectors():
    schema = tiny_schema(num_categorical=3, num_numeric=0)
    model = build_model("DLRM", schema, {"embedding_dim": 4, "interaction_op": "cat", "top_mlp_units": [6]})
    assert model.bottom_mlp is None and model.top_mlp.net[0].in_features == 3 * 4


def test_unknown_interaction_is_rejected():
    with pytest.raises(Exception, match="interaction_op"):
        build_model("DLRM", tiny_schema(), {"interaction_op": "sum"})


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "DLRM.yaml").read_text())
    model = build_model("DLRM", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 417891

"""FLEN: field-wise bi-interaction = inter-group (MF) + intra-group (FM) parts of all pairs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.models.flen import field_groups
from ctrkit.nn.interactions import bi_interaction
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

def test_unit_weights_split_the_full_bi_interaction_into_group_parts():
    schema = tiny_schema(sequence=True)  # c0..c3, n0, n1, hist
    torch.manual_seed(0)
    model = build_model("FLEN", schema, {"embedding_dim": 4, "user_fields": ["c0", "n1"], "item_fields": ["c2"]})
    scale_up(model)
    with torch.no_grad():
        model.r_ij.weight.fill_(1.0)
        model.r_mm.weight.fill_(1.0)
        e = model.embedding(random_batch(schema, 8))
        h_mf, h_fm = model.fwbi_parts(e)
        # every field pair is either inside one group (FM part) or across two groups (MF part)
        torch.testing.assert_close(h_mf + h_fm, bi_interaction(e), rtol=1e-5, atol=1e-5)
        # user = {c0, n1} (fields 0, 5), item = {c2} (field 2), context = the rest
        intra = bi_interaction(e[:, [0, 5]]) + bi_interaction(e[:, [2]]) + bi_interaction(e[:, [1, 3, 4, 6]])
        torch.testing.assert_close(h_fm, intra, rtol=1e-5, atol=1e-5)


def test_default_groups_are_user_item_then_context():
    schema = tiny_schema()
    assert field_groups(schema, (), ()) == [[0], [1], [2, 3, 4, 5]]
    assert field_groups(schema, ("n0",), ("c3", "c1")) == [[4], [3, 1], [0, 2, 5]]
    with pytest.raises(ValueError):
        field_groups(schema, ("nope",), ())
    with pytest.raises(ValueError):
        field_groups(schema, ("c0",), ("c0",))


def test_output_layer_reads_fwbi_and_mlp():
    schema = tiny_schema()
    model = build_model("FLEN", schema, {"embedding_dim": 4, "dnn_hidden_units": [8]})
    assert model.w_fwbi.in_features == 5 and model.w_f.in_features == 8 + 5
    assert model.mlp.net[0].in_features == 6 * 4


def test_frappe_config_is_untuned_but_valid():
    cfg = yaml.safe_load((BARS / "FLEN.yaml").read_text())
    assert cfg["bars"] is None
    assert make_config("FLEN", cfg["model"]["params"]) == make_config("FLEN", {})

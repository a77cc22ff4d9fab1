"""DSSM: two towers over disjoint field groups, logit = <user_tower, item_tower>."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.batch import Batch
from ctrkit.models import build_model
from ctrkit.schema import FeatureSchema
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"
FRAPPE = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city")
PARAMS = {"user_fields": ["c0", "c1"], "item_fields": ["c2", "n0"], "user_tower_units": [8, 4], "item_tower_units": [6, 4]}


def frappe_schema() -> FeatureSchema:
    feats = [{"name": n, "kind": "categorical"} for n in FRAPPE]
    schema = FeatureSchema.from_dict({"features": feats, "tasks": [{"name": "click"}]})
    return schema.with_vocab_sizes({n: 539 if i < 9 else 538 for i, n in enumerate(FRAPPE)})


def test_logit_is_the_inner_product_of_the_towers():
    schema = tiny_schema()
    model = build_model("DSSM", schema, PARAMS)
    model.eval()
    b = random_batch(schema, 8)
    with torch.no_grad():
        user, item = model.towers(b)
        assert user.shape == item.shape == (8, 4)
        torch.testing.assert_close(model(b).logits["click"], (user * item).sum(-1))


def test_each_tower_sees_only_its_own_fields():
    schema = tiny_schema()
    model = build_model("DSSM", schema, PARAMS)
    model.eval()
    b = random_batch(schema, 8)
    other = random_batch(schema, 8, seed=9)
    # Swap in other item fields (c2, n0): the user vector must not move, the item vector must.
    ids = b.ids.clone()
    ids[:, 2] = other.ids[:, 2]
    dense = b.dense.clone()
    dense[:, 0] = other.dense[:, 0]
    b2 = Batch(ids=ids, dense=dense, labels=b.labels)
    with torch.no_grad():
        u1, i1 = model.towers(b)
        u2, i2 = model.towers(b2)
    torch.testing.assert_close(u1, u2, rtol=0, atol=0)
    assert not torch.allclose(i1, i2)


def test_item_fields_default_to_the_rest():
    model = build_model("DSSM", tiny_schema(), {"user_fields": ["c0"], "embedding_dim": 2})
    assert model.item_idx.tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "params, match",
    [
        ({}, "user_fields"),
        ({"user_fields": ["nope"]}, "not a feature"),
        ({"user_fields": ["c0"], "item_fields": ["c0", "c1"]}, "both towers"),
        ({"user_fields": ["c0"], "user_tower_units": [8], "item_tower_units": [4]}, "same width"),
    ],
)
def test_bad_tower_settings_are_rejected(params, match):
    with pytest.raises(ValueError, match=match):
        build_model("DSSM", tiny_schema(), params)


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "DSSM.yaml").read_text())
    p = cfg["model"]["params"]
    assert set(p["user_fields"]) | set(p["item_fields"]) == set(FRAPPE)
    assert p["item_fields"] == ["item", "cost"]
    model = build_model("DSSM", frappe_schema(), p)
    assert sum(x.numel() for x in model.parameters()) == 739490

"""Sequence models: sequence_field / target_field select one or several behaviour pairs."""

from __future__ import annotations

import pytest
import torch

from ctrkit.errors import ConfigError
from ctrkit.models import build_model
from ctrkit.nn.sequence import resolve_pairs
from ctrkit.schema import FeatureSchema
from ctrkit.testing import random_batch

MODELS = ["DIN", "DIEN", "BST", "SDIM", "ETA"]


def two_sequence_schema() -> FeatureSchema:
    feats = [{"name": f"c{i}", "kind": "categorical"} for i in range(3)]
    feats += [{"name": "n0", "kind": "numeric"}]
    feats += [{"name": "hist", "kind": "sequence", "max_len": 6, "share_vocab_with": "c0"},
              {"name": "hist2", "kind": "sequence", "max_len": 5, "share_vocab_with": "c1"}]
    schema = FeatureSchema.from_dict({"features": feats, "tasks": [{"name": "click"}]})
    return schema.with_vocab_sizes({"c0": 12, "c1": 9, "c2": 7})


def test_resolve_pairs():
    s = two_sequence_schema()
    assert resolve_pairs(s, None, None) == [(("hist",), ("c0",))]
    assert resolve_pairs(s, ["hist", "hist2"], None) == [(("hist", "hist2"), ("c0", "c1"))]
    assert resolve_pairs(s, [["hist"], ["hist2"]], None) == [(("hist",), ("c0",)), (("hist2",), ("c1",))]
    with pytest.raises(ConfigError):
        resolve_pairs(s, "c0", None)
    with pytest.raises(ConfigError):
        resolve_pairs(s, ["hist", "hist2"], ["c0"])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("fields", [None, ["hist", "hist2"], [["hist"], ["hist2"]]])
def test_pairs_forward_and_backward(name, fields):
    schema = two_sequence_schema()
    torch.manual_seed(0)
    params = {"hidden_units": [8], "sequence_field": fields}
    model = build_model(name, schema, params)
    model.train()
    b = random_batch(schema, 16, seed=1)
    out = model(b)
    assert out.logits["click"].shape == (16,) and torch.isfinite(out.logits["click"]).all()
    loss = out.logits["click"].sum() + (out.aux_loss if out.aux_loss is not None else 0)
    loss.backward()
    n_pairs = 1 if fields is None or isinstance(fields[0], str) else 2
    assert len(model.inputs.pairs) == n_pairs
    # the unpaired sequence is mean pooled into the "other" fields
    assert model.inputs.num_other == 3 + 1 + (1 if fields is None else 0)

"""DIN: the local activation unit's weights are unnormalised and an empty history pools to zero."""

from __future__ import annotations

import torch

from ctrkit.batch import Batch, FieldLayout, SequenceBatch
from ctrkit.models import build_model
from ctrkit.testing import random_batch, tiny_schema

PARAMS = {"attention_hidden_units": [16], "hidden_units": [16]}


def _model():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    model = build_model("DIN", schema, PARAMS)
    # train one step so Dice's running statistics are not the identity defaults
    model.train()
    model(random_batch(schema, 32, seed=1)).logits["click"].sum().backward()
    model.eval()
    return model, schema


def test_all_padding_history_pools_to_zero():
    model, schema = _model()
    b = random_batch(schema, 8, seed=2)
    s = b.sequences["hist"]
    pad = FieldLayout.from_schema(schema).offset("hist")  # the owner's padding row (local id 0)
    empty = Batch(ids=b.ids, dense=b.dense, sequences={"hist": SequenceBatch(torch.full_like(s.values, pad), torch.zeros_like(s.lengths))}, labels=b.labels)
    # a batch whose rows are all empty may also arrive padded to width 0
    width0 = Batch(ids=b.ids, dense=b.dense, sequences={"hist": SequenceBatch(s.values[:, :0], torch.zeros_like(s.lengths))}, labels=b.labels)
    with torch.no_grad():
        torch.testing.assert_close(model(width0).logits["click"], model(empty).logits["click"])
        v = model.inputs(empty)
        assert not v.mask.any()
        torch.testing.assert_close(model.attention[0](v.target, v.sequence, v.mask), torch.zeros_like(v.target), rtol=0, atol=0)
        assert (model.attention[0].weights(v.target, v.sequence, v.mask) == 0).all()
        assert torch.isfinite(model(empty).logits["click"]).all()


def test_weights_are_not_softmax_normalised():
    model, schema = _model()
    b = random_batch(schema, 8, seed=3)
    with torch.no_grad():
        v = model.inputs(b)
        w = model.attention[0].weights(v.target, v.sequence, v.mask)
        assert (w[~v.mask] == 0).all()
        sums = w.sum(1)[v.mask.any(1)]
        assert not torch.allclose(sums, torch.ones_like(sums), atol=1e-3)
        # a history of the same item twice pools to exactly twice the single-item history
        k = v.sequence[:, :1]
        one = model.attention[0](v.target, k, torch.ones(8, 1, dtype=torch.bool))
        two = model.attention[0](v.target, k.repeat(1, 2, 1), torch.ones(8, 2, dtype=torch.bool))
        torch.testing.assert_close(two, 2 * one)
        assert one.abs().sum() > 0

"""BST: padded positions (their ids, and how much padding there is) do not change the output."""

from __future__ import annotations

import pytest
import torch

from ctrkit.batch import Batch, FieldLayout, SequenceBatch
from ctrkit.models import build_model
from ctrkit.testing import random_batch, tiny_schema


def repadded(schema, b: Batch, extra: int, seed: int) -> Batch:
    """The same batch with random real ids in every padded slot and ``extra`` more padded columns."""
    g = torch.Generator().manual_seed(seed)
    off = FieldLayout.from_schema(schema).offset("hist")
    s = b.sequences["hist"]
    B, L = s.values.shape
    vals = torch.cat([s.values, torch.full((B, extra), off)], 1)
    noise = torch.randint(2, schema.vocab_size("hist"), vals.shape, generator=g) + off
    mask = torch.arange(L + extra)[None] < s.lengths[:, None]
    vals = torch.where(mask, vals, noise)
    return Batch(ids=b.ids, dense=b.dense, sequences={"hist": SequenceBatch(vals, s.lengths)}, labels=b.labels)


@pytest.mark.parametrize("pooling", ["concat", "target", "mean"])
def test_padding_does_not_change_the_output(pooling):
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    model = build_model("BST", schema, {"hidden_units": [16], "pooling": pooling, "num_heads": 2})
    with torch.no_grad():  # non-trivial position embeddings
        model.encoders[0].position.weight.normal_()
    model.eval()
    b = random_batch(schema, 16, seed=3)
    # the batch's own padding width is max_len; shrink it to the longest row first
    s = b.sequences["hist"]
    Lb = int(s.lengths.max())
    short = Batch(ids=b.ids, dense=b.dense, sequences={"hist": SequenceBatch(s.values[:, :Lb], s.lengths)}, labels=b.labels)
    with torch.no_grad():
        ref = model(short).logits["click"]
        for extra, seed in ((0, 1), (8 - Lb, 2)):
            out = model(repadded(schema, short, extra, seed)).logits["click"]
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        assert torch.isfinite(ref).all()

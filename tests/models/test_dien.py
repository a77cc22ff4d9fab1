"""DIEN: the auxiliary loss is finite and positive; the output ignores padded steps."""

from __future__ import annotations

import torch

from ctrkit.batch import Batch, FieldLayout, SequenceBatch
from ctrkit.models import build_model
from ctrkit.testing import random_batch, tiny_schema

PARAMS = {"aux_hidden_units": [8], "hidden_units": [16], "hidden_activations": "relu"}


def test_aux_loss_is_finite_and_positive():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    model = build_model("DIEN", schema, PARAMS)
    model.train()
    out = model(random_batch(schema, 32, seed=1))
    assert out.aux_loss is not None and out.aux_loss.ndim == 0
    assert torch.isfinite(out.aux_loss) and out.aux_loss > 0
    model.eval()
    assert model(random_batch(schema, 8, seed=1)).aux_loss is None


def test_output_ignores_padded_steps():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    model = build_model("DIEN", schema, PARAMS)
    model.eval()
    b = random_batch(schema, 16, seed=2)
    s = b.sequences["hist"]
    B, L = s.values.shape
    off = FieldLayout.from_schema(schema).offset("hist")
    g = torch.Generator().manual_seed(5)
    vals = torch.cat([s.values, torch.full((B, 3), off)], 1)
    noise = torch.randint(2, schema.vocab_size("hist"), vals.shape, generator=g) + off
    vals = torch.where(torch.arange(L + 3)[None] < s.lengths[:, None], vals, noise)
    noisy = Batch(ids=b.ids, dense=b.dense, sequences={"hist": SequenceBatch(vals, s.lengths)}, labels=b.labels)
    with torch.no_grad():
        ref, out = model(b).logits["click"], model(noisy).logits["click"]
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        assert torch.isfinite(ref).all()
        # the interest states are exactly zero on padded steps (incl. an empty history)
        v = model.inputs(noisy)
        h = model.evolution[0].interests(v.sequence, v.mask)
        assert (h[~v.mask] == 0).all()

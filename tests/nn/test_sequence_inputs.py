"""BehaviorInputs: the training-time lookup through the batch's distinct rows gives the values
and gradients of a plain lookup, with one row-sparse gradient of distinct rows."""

from __future__ import annotations

import torch

from ctrkit.models import build_model
from ctrkit.nn.embedding import set_sparse_embeddings
from ctrkit.nn.sequence import unique_rows
from ctrkit.testing import random_batch, tiny_schema


def test_unique_rows_both_methods():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (300,), generator=g)
    for num_rows in (50, 100_000):  # occupancy map, torch.unique
        rows, inv = unique_rows(ids, num_rows)
        assert torch.equal(rows, torch.unique(ids))
        assert torch.equal(rows[inv], ids)
    rows, inv = unique_rows(ids[:0], 50)
    assert rows.numel() == 0 and inv.numel() == 0


def test_lookup_through_distinct_rows_matches_plain_lookup():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    model = build_model("DIN", schema, {"attention_hidden_units": [8], "hidden_units": [8]})
    model.train()
    inputs = model.inputs
    b = random_batch(schema, 16, seed=1)
    with torch.no_grad():
        plain = inputs(b)
    v = inputs(b)
    assert v.pairs[0].table is not None and plain.pairs[0].table is None
    torch.testing.assert_close(v.other, plain.other)
    torch.testing.assert_close(v.target, plain.target)
    torch.testing.assert_close(v.sequence, plain.sequence)
    assert torch.equal(v.mask, plain.mask)

    # gradients: a random linear function of every output, against plain per-field lookups
    emb = inputs.embedding
    g = torch.Generator().manual_seed(2)
    w_other, w_target, w_seq = (torch.randn(t.shape, generator=g) for t in (v.other, v.target, v.sequence))

    def f(other, target, seq, mask):
        return (other * w_other).sum() + (target * w_target).sum() + (seq * w_seq * mask.unsqueeze(-1)).sum()

    weight = emb.fused.tables[0].weight
    ids_emb = emb.fused(b.ids)
    ref_other = torch.cat([ids_emb, b.dense.unsqueeze(-1) * emb.numeric_weight], 1)
    ref_target = ids_emb[:, inputs.target_columns[0][0]]
    ref = f(ref_other, ref_target, emb.fused(b.sequences["hist"].values), v.mask)
    (g_ref,) = torch.autograd.grad(ref, weight)
    set_sparse_embeddings(model, True)
    v = inputs(b)
    (got,) = torch.autograd.grad(f(v.other, v.target, v.sequence, v.mask), weight)
    assert got.is_sparse
    rows = got._indices()[0]
    assert rows.numel() == torch.unique(rows).numel()  # one entry per distinct row
    torch.testing.assert_close(got.to_dense(), g_ref)


def test_target_attention_dense_form_equals_gathered_form():
    # The export traces the dense form (every slot scored, padded ones zeroed); at inference it
    # must give the gathered form's pooling, empty histories included.
    from ctrkit.nn.sequence import TargetAttention

    torch.manual_seed(0)
    att = TargetAttention(4, (8, 6)).eval()
    B, L = 7, 5
    target, seq = torch.randn(B, 4), torch.randn(B, L, 4)
    lengths = torch.tensor([0, 1, 5, 3, 2, 5, 4])
    mask = torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)
    with torch.no_grad():
        want = att(target, seq, mask)
        got = att._dense(target, seq, mask)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(got[0], torch.zeros(4))

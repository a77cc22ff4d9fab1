"""SDIM: exactly the behaviours sharing the target's SimHash bucket (per hash) are averaged."""

from __future__ import annotations

import torch

from ctrkit.models import build_model
from ctrkit.testing import tiny_schema


def test_colliding_behaviours_are_averaged():
    schema = tiny_schema(sequence=True)
    model = build_model("SDIM", schema, {"num_hashes": 2, "hash_bits": 2, "hidden_units": [8]})
    D = model.inputs.pair_dim  # 10
    proj = torch.zeros(D, 2, 2)
    for j in range(2):
        for t in range(2):
            proj[2 * j + t, j, t] = 1.0  # hash j's bit t is the sign of coordinate 2j + t
    model.hashes[0].projection.copy_(proj)
    g = torch.Generator().manual_seed(0)

    def vec(head):
        return torch.cat([torch.tensor(head, dtype=torch.float32), torch.randn(D - 4, generator=g)])

    target = vec([1, 1, 1, -1])  # buckets: hash0 (1,1), hash1 (1,0)
    a = vec([2, 1, 3, -2])  # collides in both hashes
    b = vec([1, 5, -1, 1])  # collides in hash0 only
    c = vec([-1, 1, 1, -4])  # collides in hash1 only
    d = vec([-1, -1, -1, -1])  # collides nowhere
    pad = vec([1, 1, 1, -1])  # would collide in both, but is padding
    seq = torch.stack([a, b, c, d, pad]).unsqueeze(0)
    mask = torch.tensor([[True, True, True, True, False]])
    out = model.pool(target.unsqueeze(0), seq, mask)[0]
    expected = ((a + b) / 2 + (a + c) / 2) / 2
    torch.testing.assert_close(out, expected)
    # nothing collides -> zeros; no real behaviour -> zeros
    torch.testing.assert_close(model.pool(target.unsqueeze(0), d.view(1, 1, -1), torch.ones(1, 1, dtype=torch.bool)), torch.zeros(1, D))
    torch.testing.assert_close(model.pool(target.unsqueeze(0), seq, torch.zeros_like(mask)), torch.zeros(1, D))


def _sdim(aggregation="mean", seed=0):
    schema = tiny_schema(sequence=True)
    torch.manual_seed(seed)
    model = build_model("SDIM", schema, {"num_hashes": 4, "hash_bits": 2, "hidden_units": [8], "aggregation": aggregation})
    return model, schema


def test_gathered_codes_are_the_codes_of_the_gathered_vectors():
    model, _ = _sdim()
    h = model.hashes[0]
    g = torch.Generator().manual_seed(1)
    table = torch.randn(30, 5, generator=g)
    idx = [torch.randint(0, 30, (4, 7), generator=g), torch.randint(0, 30, (4, 7), generator=g)]
    x = torch.cat([table[i] for i in idx], -1)
    assert torch.equal(h.gathered_codes(table, idx), h.codes(x))
    assert torch.equal(h.codes(x, packed=True).long(), h.codes(x))
    ref = (torch.einsum("...d,dmt->...mt", x, h.projection) > 0).long()
    assert torch.equal(h.codes(x), (ref * h.powers).sum(-1))


def test_weighted_row_sum_both_layouts():
    from ctrkit.nn.sequence import weighted_row_sum

    g = torch.Generator().manual_seed(2)
    for U in (6, 200):  # (B, U) weight matrix, and gather + bmm
        table = torch.randn(U, 3, generator=g, requires_grad=True)
        idx = torch.randint(0, U, (4, 5), generator=g)
        a = torch.rand(4, 5, generator=g)
        out = weighted_row_sum(a, table, idx)
        ref = (a.unsqueeze(-1) * table[idx]).sum(1)
        torch.testing.assert_close(out, ref)
        gout = torch.randn(4, 3, generator=g)
        (ga,) = torch.autograd.grad(out, table, gout)
        (gr,) = torch.autograd.grad(ref, table, gout)
        torch.testing.assert_close(ga, gr)


def test_training_path_matches_reference_pooling():
    """With autograd on, SDIM pools on the batch's distinct embedding rows (pool_rows); logits and
    every gradient equal those of the reference pooling over the gathered (B, L, D) behaviours."""
    from ctrkit.testing import random_batch

    for aggregation in ("mean", "sum"):
        model, schema = _sdim(aggregation)
        model.train()
        b = random_batch(schema, 32, seed=3)
        v = model.inputs(b)
        p = v.pairs[0]
        assert p.table is not None  # the training path is the one under test
        fast = model(b).logits["click"]
        params = [q for q in model.parameters() if q.requires_grad]
        gout = torch.randn_like(fast)
        g_fast = torch.autograd.grad(fast, params, gout, allow_unused=True)
        v = model.inputs(b)
        interest = model.pool(v.target, v.sequence, v.mask)
        ref = model.output(model.mlp(torch.cat([v.other.flatten(1), interest], -1))).logits["click"]
        g_ref = torch.autograd.grad(ref, params, gout, allow_unused=True)
        torch.testing.assert_close(fast, ref)
        for a, r in zip(g_fast, g_ref):
            if r is None:
                assert a is None
            else:
                torch.testing.assert_close(a, r)
        with torch.no_grad():  # evaluation takes the reference path: the same logits
            torch.testing.assert_close(model(b).logits["click"], fast.detach())

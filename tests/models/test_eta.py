"""ETA: top-k retrieval by Hamming distance matches a brute-force computation."""

from __future__ import annotations

import torch

from ctrkit.models import build_model
from ctrkit.testing import tiny_schema


def test_topk_matches_brute_force():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    k = 4
    model = build_model("ETA", schema, {"hash_bits": 6, "topk": k, "hidden_units": [8]})
    D = model.inputs.pair_dim
    g = torch.Generator().manual_seed(1)
    B, L = 40, 12
    target = torch.randn(B, D, generator=g)
    seq = torch.randn(B, L, D, generator=g)
    seq[:5] = target[:5, None] + 0.01 * torch.randn(5, L, D, generator=g)  # many exact ties (distance 0)
    lengths = torch.randint(0, L + 1, (B,), generator=g)
    lengths[:3] = torch.tensor([0, 1, 3])
    mask = torch.arange(L)[None] < lengths[:, None]
    idx, valid = model.retrieve(target, seq, mask)
    tb, sb = model.hashes[0].bits(target).squeeze(-1), model.hashes[0].bits(seq).squeeze(-1)
    for r in range(B):
        real = [i for i in range(L) if mask[r, i]]
        dist = {i: int((tb[r] != sb[r, i]).sum()) for i in real}
        want = sorted(real, key=lambda i: (dist[i], -i))[:k]  # nearest first, ties: most recent
        n = int(valid[r].sum())
        assert n == min(k, len(real))
        assert valid[r, :n].all() and not valid[r, n:].any()
        assert idx[r, :n].tolist() == want
    assert idx.shape == (B, k)

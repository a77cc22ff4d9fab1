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

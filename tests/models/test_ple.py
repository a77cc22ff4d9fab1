"""PLE: CGC layers map T+1 inputs to T+1 outputs (T on the last layer) with gates over the right
experts."""

from __future__ import annotations

import torch

from ctrkit.models import build_model
from ctrkit.nn.experts import CGCLayer
from ctrkit.testing import random_batch, tiny_schema


def test_cgc_and_model_shapes():
    T, S, P, B = 3, 2, 3, 16
    x = torch.randn(B, 12)
    mid = CGCLayer(12, T, S, P, (10, 7), (5,), last=False)
    outs, gates = mid([x] * (T + 1))
    assert [o.shape for o in outs] == [(B, 7)] * (T + 1)
    assert [g.shape for g in gates] == [(B, P + S)] * T + [(B, T * P + S)]
    last = CGCLayer(7, T, S, P, (6,), (), last=True)
    outs, gates = last(outs)
    assert [o.shape for o in outs] == [(B, 6)] * T
    assert [g.shape for g in gates] == [(B, P + S)] * T
    for g in gates:
        torch.testing.assert_close(g.sum(1), torch.ones(B))

    schema = tiny_schema(tasks=("click", "conversion", "like"))
    model = build_model("PLE", schema, {"embedding_dim": 8, "num_layers": 3, "num_shared_experts": S,
                                        "num_specific_experts": P, "expert_hidden_units": (16,),
                                        "gate_hidden_units": (), "tower_hidden_units": (8,)})
    out = model(random_batch(schema, B))
    assert {t: v.shape for t, v in out.logits.items()} == {t: (B,) for t in schema.task_names}
    assert all(out.extras[f"gate_{t}"].shape == (B, P + S) for t in schema.task_names)

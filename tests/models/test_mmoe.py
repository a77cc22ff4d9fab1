"""MMoE: every task's gate is a distribution over the experts (non-negative, sums to 1)."""

from __future__ import annotations

import torch

from ctrkit.models import build_model
from ctrkit.testing import random_batch, tiny_schema


def test_gate_weights_sum_to_one():
    schema = tiny_schema(tasks=("click", "conversion", "like"))
    torch.manual_seed(0)
    model = build_model("MMoE", schema, {"embedding_dim": 8, "num_experts": 5, "expert_hidden_units": (16,),
                                         "gate_hidden_units": (8,), "tower_hidden_units": (8,)})
    out = model(random_batch(schema, 32))
    assert set(out.logits) == {"click", "conversion", "like"}
    for t in schema.task_names:
        g = out.extras[f"gate_{t}"]
        assert g.shape == (32, 5)
        assert (g >= 0).all()
        torch.testing.assert_close(g.sum(1), torch.ones(32))

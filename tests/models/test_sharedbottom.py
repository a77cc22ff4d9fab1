"""SharedBottom: tasks share the bottom exactly: a task's loss moves only the bottom and its own
tower."""

from __future__ import annotations

import torch

from ctrkit.models import build_model
from ctrkit.testing import random_batch, tiny_schema


def test_one_task_loss_leaves_other_towers_untouched():
    schema = tiny_schema(tasks=("click", "conversion"))
    torch.manual_seed(0)
    model = build_model("SharedBottom", schema, {"embedding_dim": 8, "bottom_hidden_units": (16,), "tower_hidden_units": (8,)})
    b = random_batch(schema, 32)
    out = model(b)
    torch.nn.functional.binary_cross_entropy_with_logits(out.logits["click"], b.labels["click"]).backward()
    assert all(p.grad is None for p in model.towers[1].parameters())
    assert all(p.grad is not None for p in model.towers[0].parameters())
    assert all(p.grad is not None for p in model.bottom.parameters())

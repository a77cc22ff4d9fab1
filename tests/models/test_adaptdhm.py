"""AdaptDHM: routing coefficients are a distribution over the clusters for every sample."""

from __future__ import annotations

import torch

from ctrkit.models import build_model
from ctrkit.nn.domain import DynamicRouting
from ctrkit.testing import random_batch, tiny_schema


def test_routing_weights_sum_to_one_per_sample():
    schema = tiny_schema(domains=3)
    torch.manual_seed(0)
    model = build_model("AdaptDHM", schema, {"embedding_dim": 8, "bottom_hidden_units": (16,), "num_clusters": 5})
    out = model(random_batch(schema, 48))
    c = out.extras["routing"]
    assert c.shape == (48, 5)
    assert (c >= 0).all()
    torch.testing.assert_close(c.sum(1), torch.ones(48))
    # also for large inputs (saturated votes) and more routing rounds
    r = DynamicRouting(16, 4, capsule_dim=8, iterations=6)
    c = r(torch.randn(32, 16) * 1e3)
    assert torch.isfinite(c).all()
    torch.testing.assert_close(c.sum(1), torch.ones(32))

"""AdaptDHM: routing coefficients are a distribution over the clusters for every sample; the
dynamic routing clusters samples (it separates well-separated groups instead of collapsing onto
one cluster), and in evaluation a sample's routing does not depend on the rest of its batch."""

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
    # also for large inputs and more routing rounds
    r = DynamicRouting(16, 4, iterations=6)
    c = r(torch.randn(32, 16) * 1e3)
    assert torch.isfinite(c).all()
    torch.testing.assert_close(c.sum(1), torch.ones(32))


def test_routing_separates_groups_and_is_batch_independent_in_eval():
    torch.manual_seed(0)
    means = torch.randn(3, 24) * 3
    r = DynamicRouting(24, 3).train()
    for _ in range(60):
        g = torch.randint(0, 3, (256,))
        r(means[g] + torch.randn(256, 24))
    r.eval()
    g = torch.arange(300) % 3
    x = means[g] + torch.randn(300, 24)
    top = r(x).argmax(1)
    # every group is routed (almost) entirely to one cluster, and the groups to different clusters
    majority = [torch.mode(top[g == k]).values.item() for k in range(3)]
    assert len(set(majority)) == 3
    assert all((top[g == k] == majority[k]).float().mean() > 0.9 for k in range(3))
    torch.testing.assert_close(r(x[:7]), r(x)[:7])


def test_every_tower_topology_and_routing_mode_runs():
    schema = tiny_schema(domains=3)
    for topology in ("star", "separate"):
        for hard in (True, False):
            for bottom in ((), (16,)):
                torch.manual_seed(0)
                model = build_model(
                    "AdaptDHM",
                    schema,
                    {"embedding_dim": 8, "bottom_hidden_units": bottom, "tower_hidden_units": (8,), "num_clusters": 3,
                     "tower_topology": topology, "hard_routing": hard},
                )
                out = model(random_batch(schema, 24))
                assert out.logits["click"].shape == (24,)
                out.logits["click"].sum().backward()

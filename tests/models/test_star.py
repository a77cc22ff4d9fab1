"""STAR: with domain weights at 1 and domain biases at 0 the star FCN is the shared FCN."""

from __future__ import annotations

import torch

from ctrkit.models import build_model
from ctrkit.nn.domain import PartitionedNorm, StarFCN
from ctrkit.testing import random_batch, tiny_schema


def test_unit_domain_weights_equal_shared_fcn():
    torch.manual_seed(0)
    fcn = StarFCN(12, (10, 6), num_domains=4, output_dim=1)
    x, dom = torch.randn(64, 12), torch.randint(0, 4, (64,))
    with torch.no_grad():
        for layer in fcn.layers:
            layer.bias.normal_()
            layer.domain_weight.fill_(1.0)
            layer.domain_bias.zero_()
    h = x
    for i, layer in enumerate(fcn.layers):
        h = h @ layer.weight + layer.bias
        if i < len(fcn.layers) - 1:
            h = torch.relu(h)
    torch.testing.assert_close(fcn(x, dom), h)
    # and different domain weights give domain-dependent outputs
    with torch.no_grad():
        fcn.layers[0].domain_weight[1].mul_(3.0)
    assert not torch.allclose(fcn(x, dom)[dom == 1], h[dom == 1])
    torch.testing.assert_close(fcn(x, dom)[dom != 1], h[dom != 1])


def test_partitioned_norm_uses_each_domains_statistics():
    pn = PartitionedNorm(5, num_domains=3).train()
    x = torch.randn(90, 5) * torch.tensor([1.0, 2, 3, 4, 5]) + 7
    dom = torch.arange(90) % 3
    x[dom == 2] += 100.0
    z = pn(x, dom)
    for d in range(3):
        torch.testing.assert_close(z[dom == d].mean(0), torch.zeros(5), atol=1e-5, rtol=0)
    assert pn.running_mean[2].mean() > pn.running_mean[0].mean() + 5


def test_model_runs_on_each_domain():
    schema = tiny_schema(domains=3)
    model = build_model("STAR", schema, {"embedding_dim": 8, "hidden_units": (16,)}).eval()
    out = model(random_batch(schema, 32))
    assert out.logits["click"].shape == (32,)

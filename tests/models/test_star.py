"""STAR: with domain weights at 1 (zero offsets) and domain biases at 0 the star FCN is the shared FCN."""

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
            layer.domain_delta.zero_()
            layer.domain_bias.zero_()
    h = x
    for i, layer in enumerate(fcn.layers):
        h = h @ layer.weight + layer.bias
        if i < len(fcn.layers) - 1:
            h = torch.relu(h)
    torch.testing.assert_close(fcn(x, dom), h)
    # and different domain weights give domain-dependent outputs
    with torch.no_grad():
        fcn.layers[0].domain_delta[1].fill_(0.1)
    assert not torch.allclose(fcn(x, dom)[dom == 1], h[dom == 1])
    torch.testing.assert_close(fcn(x, dom)[dom != 1], h[dom != 1])


def test_domain_factor_is_the_papers_elementwise_weight():
    torch.manual_seed(0)
    fcn = StarFCN(12, (), num_domains=3, output_dim=5)
    layer = fcn.layers[0]
    with torch.no_grad():
        layer.domain_delta.normal_()
    torch.testing.assert_close(layer.domain_factor(), 1.0 + layer.delta_gain * layer.domain_delta)
    x, dom = torch.randn(30, 12), torch.arange(30) % 3
    want = torch.stack([x[i] @ (layer.weight * layer.domain_factor()[dom[i]]) + layer.bias for i in range(30)])
    torch.testing.assert_close(fcn(x, dom), want)
    # an Adam-sized step on the offset moves the effective weight about as much as one on W
    assert 0.5 < layer.delta_gain * layer.weight.abs().mean().item() < 1.5


def test_partitioned_norm_uses_each_domains_statistics():
    torch.manual_seed(0)
    pn = PartitionedNorm(5, num_domains=3).train()
    x = torch.randn(90, 5) * torch.tensor([1.0, 2, 3, 4, 5]) + 7
    dom = torch.arange(90) % 3
    x[dom == 2] += 100.0
    z = pn(x, dom)
    for d in range(3):
        torch.testing.assert_close(z[dom == d].mean(0), torch.zeros(5), atol=1e-4, rtol=0)  # float32, |x| ~ 100
    assert pn.running_mean[2].mean() > pn.running_mean[0].mean() + 5


def test_model_runs_on_each_domain():
    schema = tiny_schema(domains=3)
    model = build_model("STAR", schema, {"embedding_dim": 8, "hidden_units": (16,)}).eval()
    out = model(random_batch(schema, 32))
    assert out.logits["click"].shape == (32,)


def test_partitioned_norm_uses_running_statistics_in_eval():
    torch.manual_seed(0)
    pn = PartitionedNorm(4, num_domains=2, momentum=1.0).train()
    x, dom = torch.randn(64, 4) * 3 + 5, torch.arange(64) % 2
    pn(x, dom)  # momentum 1: the running statistics are this batch's
    pn.eval()
    one = pn(x[:1], dom[:1])  # a single row: batch statistics would zero it
    want = (x[:1] - x[dom == 0].mean(0)) / torch.sqrt(x[dom == 0].var(0) + pn.eps)
    torch.testing.assert_close(one, want, atol=1e-4, rtol=1e-4)

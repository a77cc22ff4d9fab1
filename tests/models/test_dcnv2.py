"""DCNv2: x_{l+1} = x_0 * (W_l x_l + b_l) + x_l; four ways to combine it with MLPs; the mixture of
low-rank experts (Wang et al., WWW 2021)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.cross import CrossNetMix, CrossNetV2
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"
SMALL = {"embedding_dim": 2, "stacked_dnn_hidden_units": [8, 5], "parallel_dnn_hidden_units": [7, 3]}


@pytest.mark.parametrize("mixture", [False, True])
@pytest.mark.parametrize(
    "structure, fc_in, has_stacked, has_parallel",
    [
        ("crossnet_only", 12, False, False),
        ("stacked", 5, True, False),
        ("parallel", 12 + 3, False, True),
        ("stacked_parallel", 5 + 3, True, True),
    ],
)
def test_every_structure_builds_the_right_shapes(structure, fc_in, has_stacked, has_parallel, mixture):
    schema = tiny_schema()  # 6 fields x dim 2 -> x0 has 12 columns
    params = dict(SMALL, model_structure=structure, use_low_rank_mixture=mixture, low_rank=3, num_experts=2)
    torch.manual_seed(0)
    model = build_model("DCNv2", schema, params)
    assert model.fc.in_features == fc_in
    assert (model.stacked_dnn is not None) == has_stacked
    assert (model.parallel_dnn is not None) == has_parallel
    assert isinstance(model.crossnet, CrossNetMix if mixture else CrossNetV2)
    b = random_batch(schema, 8)
    out = model(b).logits["click"]
    assert out.shape == (8,) and torch.isfinite(out).all()
    torch.nn.functional.binary_cross_entropy_with_logits(out, b.labels["click"]).backward()
    assert all(p.grad is not None for p in model.parameters())  # no unused parameters


def test_full_rank_layers_match_the_formula_and_are_identity_at_zero():
    net = CrossNetV2(5, num_layers=2)
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.normal_()
    x0 = torch.randn(3, 5)
    x = x0
    for layer in net.layers:  # W_l acts on x_l (not on x_0): visible from the second layer on
        x = x0 * (x @ layer.weight.T + layer.bias) + x
    torch.testing.assert_close(net(x0), x)
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.zero_(), layer.bias.zero_()
    torch.testing.assert_close(net(x0), x0)


def test_single_expert_mixture_matches_the_low_rank_formula():
    net = CrossNetMix(6, num_layers=1, low_rank=2, num_experts=1)
    with torch.no_grad():
        net.bias.normal_()
    x0 = torch.randn(4, 6)
    U, V, C, b = net.U[0, 0], net.V[0, 0], net.C[0, 0], net.bias[0]
    inner = torch.tanh(torch.tanh(x0 @ V) @ C.T)  # g(C g(V^T x))
    expected = x0 * (inner @ U.T + b) + x0  # softmax over one expert is 1
    torch.testing.assert_close(net(x0), expected)


def test_identical_experts_mix_to_one_expert():
    """The gate is a softmax, so K copies of one expert give that expert's output."""
    torch.manual_seed(0)
    one = CrossNetMix(6, num_layers=2, low_rank=3, num_experts=1)
    many = CrossNetMix(6, num_layers=2, low_rank=3, num_experts=4)
    with torch.no_grad():
        for name in ("U", "V", "C"):
            getattr(many, name).copy_(getattr(one, name).expand_as(getattr(many, name)))
        many.bias.copy_(one.bias.normal_())
    x0 = torch.randn(5, 6)
    torch.testing.assert_close(many(x0), one(x0))


def test_invalid_structures_are_refused():
    with pytest.raises(ValueError, match="stacked_dnn_hidden_units"):
        build_model("DCNv2", tiny_schema(), {"model_structure": "stacked", "stacked_dnn_hidden_units": []})
    with pytest.raises(ValueError, match="model_structure"):
        build_model("DCNv2", tiny_schema(), {"model_structure": "sideways"})


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "DCNv2.yaml").read_text())
    model = build_model("DCNv2", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 458391

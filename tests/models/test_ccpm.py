"""CCPM: wide convolutions over fields with order-keeping flexible k-max pooling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.conv import CCPMConv, KMaxPooling, ccpm_pool_sizes
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def scale_up(model) -> None:
    """Replace the 1e-4 embedding init by N(0, 1) so interaction terms are not negligible."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embedding" in name or "numeric_weight" in name:
                p.normal_()

def test_k_max_pooling_keeps_the_largest_values_in_order():
    x = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]).view(1, 1, 8, 1)
    out = KMaxPooling(3, dim=2)(x).flatten()
    assert out.tolist() == [5.0, 9.0, 6.0]


def test_pool_sizes_follow_the_paper_with_a_floor_of_three():
    # k_i = (1 - (i/l)^(l-i)) * F for i < l, 3 for the last layer.
    assert ccpm_pool_sizes(10, 3) == [8, 3, 3]
    assert ccpm_pool_sizes(40, 3) == [35, 13, 3]
    assert ccpm_pool_sizes(4, 2) == [3, 3]


def test_convolution_is_wide_and_output_has_three_rows():
    conv = CCPMConv(10, [4, 4, 2], [6, 5, 3])
    first = conv.net[1](conv.net[0](torch.randn(2, 1, 10, 5)))
    assert first.shape == (2, 4, 10 + 6 - 1, 5)  # padded by k-1 on both sides
    assert conv(torch.randn(2, 10, 5)).shape == (2, 2, 3, 5)


def test_fields_interact_only_along_the_field_axis():
    schema = tiny_schema()
    model = build_model("CCPM", schema, {"embedding_dim": 4}).eval()
    x = torch.randn(3, 6, 4)
    y = x.clone()
    y[:, :, 2] += 1.0  # change embedding coordinate 2 only
    with torch.no_grad():
        a, c = model.conv(x), model.conv(y)
    assert torch.equal(a[..., [0, 1, 3]], c[..., [0, 1, 3]])
    assert model.fc.in_features == 3 * 4 * 2


def test_frappe_config_is_untuned_but_valid():
    cfg = yaml.safe_load((BARS / "CCPM.yaml").read_text())
    assert cfg["bars"] is None
    assert make_config("CCPM", cfg["model"]["params"]) == make_config("CCPM", {})

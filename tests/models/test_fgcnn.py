"""FGCNN: the generated field count follows the paper's formula, inner products of all pairs, the
classifier's input width, the (untuned) Frappe_x1 config."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.fgcnn import FeatureGeneration, generated_field_count, pairwise_inner_products
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_generated_count_formula_by_hand():
    # heights ceil(6/2)=3, ceil(3/2)=2, 1, 1; two recombined channels each: 2*(3+2+1+1) = 14
    assert generated_field_count(6, (2, 2, 2, 2), (2, 2, 2, 2)) == 14
    # Frappe's 10 fields: heights 5, 3, 2, 1 -> 2*11 = 22
    assert generated_field_count(10, (2, 2, 2, 2), (2, 2, 2, 2)) == 22
    # heights 4, 2 with 3 and 1 channels: 12 + 2
    assert generated_field_count(11, (3, 2), (3, 1)) == 14


@pytest.mark.parametrize(
    "F, kernels, pools, recombined",
    [(6, (7, 7, 7, 7), (2, 2, 2, 2), (2, 2, 2, 2)), (11, (4, 3), (3, 2), (3, 1)), (2, (3,), (3,), (2,))],
)
def test_generator_output_has_formula_many_fields(F, kernels, pools, recombined):
    gen = FeatureGeneration(
        F, 5, channels=(3,) * len(kernels), kernel_heights=kernels, pooling_sizes=pools, recombined_channels=recombined
    )
    out = gen(torch.randn(4, F, 5))
    assert gen.num_new_fields == generated_field_count(F, pools, recombined)
    assert out.shape == (4, gen.num_new_fields, 5)


def test_mismatched_layer_lists_are_rejected():
    with pytest.raises(ValueError, match="one length"):
        FeatureGeneration(6, 4, channels=(3, 3), kernel_heights=(3,), pooling_sizes=(2, 2), recombined_channels=(2, 2))


def test_pairwise_inner_products_cover_every_pair_once():
    e = torch.randn(3, 5, 4)
    ip = pairwise_inner_products(e)
    assert ip.shape == (3, 10)
    for p, (i, j) in enumerate(combinations(range(5), 2)):
        torch.testing.assert_close(ip[:, p], (e[:, i] * e[:, j]).sum(-1))


def test_classifier_reads_raw_and_generated_fields():
    schema = tiny_schema()  # 6 fields
    small = {"channels": [3, 3], "kernel_heights": [3, 3], "pooling_sizes": [2, 2], "recombined_channels": [2, 2], "dnn_hidden_units": [16]}
    model = build_model("FGCNN", schema, small)
    total = 6 + generated_field_count(6, (2, 2), (2, 2))  # 6 + 2*(3+2) = 16
    assert model.dnn.net[0].in_features == total * (total - 1) // 2 + total * 10
    assert model.generator_embedding is not None
    shared = build_model("FGCNN", schema, {**small, "share_embedding": True})
    assert shared.generator_embedding is None
    assert shared(random_batch(schema, 4)).logits["click"].shape == (4,)


def test_frappe_config_is_untuned_but_valid():
    cfg = yaml.safe_load((BARS / "FGCNN.yaml").read_text())
    assert cfg["bars"] is None
    config = make_config("FGCNN", cfg["model"]["params"])
    assert config == make_config("FGCNN", {})  # the file spells out the defaults

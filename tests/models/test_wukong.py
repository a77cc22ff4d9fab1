"""WuKong: the FM block is the projected pairwise inner-product matrix, layers keep (B, F, D) and
end in LayerNorm, the Frappe_x1 config."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.wukong import FactorizationMachineBlock, WuKongLayer
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_fm_block_is_projected_inner_product_matrix():
    torch.manual_seed(0)
    fm = FactorizationMachineBlock(5, 3)
    x = torch.randn(4, 5, 6)
    gram = torch.einsum("bid,bjd->bij", x, x)  # <x_i, x_j> for every field pair
    torch.testing.assert_close(fm(x), (gram @ fm.projection).flatten(1))


def test_layer_keeps_shape_and_is_layer_normed_residual():
    torch.manual_seed(0)
    layer = WuKongLayer(5, 6, project_dim=3, fmb_units=(8,), fmb_dim=4, compressed_dim=7, dropout=0.0)
    x = torch.randn(4, 5, 6)
    out = layer(x)
    assert out.shape == (4, 5, 6)
    flat = x.flatten(1)
    expected = layer.norm(layer.transform(torch.cat([layer.fmb(x), layer.lcb(flat)], 1)) + flat)
    torch.testing.assert_close(out.flatten(1), expected)
    torch.testing.assert_close(out.flatten(1).mean(-1), torch.zeros(4), atol=1e-5, rtol=0)


def test_model_stacks_layers():
    schema = tiny_schema()
    m = build_model("WuKong", schema, {"embedding_dim": 8, "num_layers": 4})
    assert len(m.layers) == 4
    assert m(random_batch(schema, 4)).logits["click"].shape == (4,)


def test_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "WuKong.yaml").read_text())
    config = make_config("WuKong", cfg["model"]["params"])
    assert (config.num_layers, config.fmb_units, config.embedding_dim) == (8, (200, 200), 10)
    assert cfg["bars"] is None

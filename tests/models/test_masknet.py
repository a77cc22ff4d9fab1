"""MaskNet: instance-guided masks multiply hidden vectors elementwise (Wang et al., DLP-KDD 2021)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.masknet import MaskBlock, ParallelMaskNet, SerialMaskNet
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_instance_guided_mask_has_the_hidden_shape_and_is_applied_elementwise():
    torch.manual_seed(0)
    block = MaskBlock(12, 7, 5, reduction_ratio=2.0, layer_norm=True).eval()
    assert block.mask_layer[0].out_features == 14  # aggregation width = reduction_ratio * hidden
    v_emb, v_hidden = torch.randn(4, 12), torch.randn(4, 7)
    mask = block.mask(v_emb)
    assert mask.shape == (4, 7)
    torch.testing.assert_close(block(v_emb, v_hidden), block.hidden_layer(mask * v_hidden))
    # Elementwise: scaling hidden coordinate j scales only column j of the masked vector.
    masked = mask * v_hidden
    scaled = v_hidden.clone()
    scaled[:, 3] *= 5.0
    diff = (mask * scaled - masked).abs().sum(0)
    assert diff[3] > 0 and torch.count_nonzero(diff) == 1


def test_mask_depends_on_the_instance():
    torch.manual_seed(1)
    block = MaskBlock(6, 4, 4)
    a, b = block.mask(torch.randn(1, 6)), block.mask(torch.randn(1, 6))
    assert not torch.allclose(a, b)


def test_serial_and_parallel_structures():
    schema = tiny_schema()  # 6 fields
    serial = build_model("MaskNet", schema, {"embedding_dim": 2, "dnn_hidden_units": [8, 4]})
    assert isinstance(serial.mask_net, SerialMaskNet) and serial.fc.in_features == 4
    first = serial.mask_net.blocks[0]
    assert first.mask_layer[0].in_features == 12 and first.mask_layer[-1].out_features == 12  # masks V_hidden
    parallel = build_model(
        "MaskNet",
        schema,
        {"embedding_dim": 2, "model_type": "ParallelMaskNet", "parallel_num_blocks": 3, "parallel_block_dim": 5, "dnn_hidden_units": [8]},
    )
    assert isinstance(parallel.mask_net, ParallelMaskNet) and parallel.fc is None
    assert parallel.mask_net.mlp.net[0].in_features == 15
    b = random_batch(schema, 8)
    for m in (serial, parallel):
        assert m(b).logits["click"].shape == (8,)


def test_embedding_layernorm_is_per_field():
    schema = tiny_schema()
    model = build_model("MaskNet", schema, {"embedding_dim": 4})
    e = torch.randn(3, 6, 4)
    with torch.no_grad():
        model.emb_norm.weight.normal_()
        out = model.emb_norm(e)
        for f in range(6):
            ln = torch.nn.functional.layer_norm(e[:, f], (4,), model.emb_norm.weight[f], model.emb_norm.bias[f])
            torch.testing.assert_close(out[:, f], ln)


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "MaskNet.yaml").read_text())
    model = build_model("MaskNet", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 571691

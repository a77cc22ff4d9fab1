"""FinalMLP: multi-head fusion is a block-diagonal bilinear form, gates re-weight in (0, 2),
context-conditioned gates, the one-stream-input setting, the BARS Frappe_x1 config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.batch import FieldLayout
from ctrkit.models import build_model, make_config
from ctrkit.nn.final import InteractionAggregation
from ctrkit.schema import NUM_RESERVED, FeatureSchema
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_multi_head_fusion_is_block_diagonal_single_head():
    torch.manual_seed(0)
    multi = InteractionAggregation(6, 4, num_heads=2)
    single = InteractionAggregation(6, 4, num_heads=1)
    single.load_state_dict({k: v for k, v in multi.state_dict().items() if k != "w_xy"}, strict=False)
    with torch.no_grad():
        single.w_xy.zero_()
        single.w_xy[0, 0:3, 0:2] = multi.w_xy[0]
        single.w_xy[0, 3:6, 2:4] = multi.w_xy[1]
    x, y = torch.randn(5, 6), torch.randn(5, 4)
    torch.testing.assert_close(multi(x, y), single(x, y))
    # and the single head is the full bilinear form x^T W y
    expected = single.w_x(x) + single.w_y(y) + ((x @ single.w_xy[0, :, :, 0]) * y).sum(-1, keepdim=True)
    torch.testing.assert_close(single(x, y), expected)


def test_heads_must_divide_both_streams():
    with pytest.raises(ValueError, match="divide"):
        InteractionAggregation(6, 5, num_heads=2)


def test_gates_rescale_the_embedding_within_zero_and_two():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("FinalMLP", schema)
    b = random_batch(schema, 8)
    flat = model.embedding(b).flatten(1)
    g1 = model.fs.gate1(b)
    # without context: one gate row, broadcast over the batch
    assert g1.shape == (1, flat.shape[1])
    assert ((g1 > 0) & (g1 < 2)).all()
    x1, x2 = model.fs(b, flat)
    torch.testing.assert_close(x1, flat * g1)
    torch.testing.assert_close(x2, flat * model.fs.gate2(b))
    # without context the gate is the same for every example
    torch.testing.assert_close(g1, g1[:1].expand_as(g1))


def test_context_gates_use_their_own_embeddings_and_get_gradients():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    model = build_model("FinalMLP", schema, {"fs1_context": ["c1", "hist"], "fs2_context": ["n0"], "num_heads": 2})
    ctx = model.fs.gate1.context
    b = random_batch(schema, 16, seed=3)
    z = ctx(b)
    assert z.shape == (16, 2, 10)
    local = b.ids[:, 1] - FieldLayout.from_schema(schema).offset("c1")  # c1's own (local) ids
    assert (local >= NUM_RESERVED).all()
    torch.testing.assert_close(z[:, 0], ctx.tables["t0"](local))  # c1's vocabulary is the first table
    model.train()
    out = model(b).logits["click"]
    torch.nn.functional.binary_cross_entropy_with_logits(out, b.labels["click"]).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_unknown_context_field_is_an_error():
    with pytest.raises(ValueError, match="not a feature"):
        build_model("FinalMLP", tiny_schema(), {"fs1_context": ["nope"]})


def test_without_feature_selection_both_streams_read_the_same_input():
    schema = tiny_schema()
    torch.manual_seed(0)
    model = build_model("FinalMLP", schema, {"use_fs": False, "mlp2_hidden_units": [32]})
    assert model.fs is None
    b = random_batch(schema, 8)
    model.eval()
    with torch.no_grad():
        flat = model.embedding(b).flatten(1)
        torch.testing.assert_close(model(b).logits["click"], model.fusion(model.mlp1(flat), model.mlp2(flat)).squeeze(-1))


def test_bars_frappe_config_builds_on_a_frappe_like_schema():
    cfg = yaml.safe_load((BARS / "FinalMLP.yaml").read_text())
    config = make_config("FinalMLP", cfg["model"]["params"])
    assert (config.fs1_context, config.fs2_context, config.num_heads) == (("user",), ("item",), 5)
    assert cfg["bars"] == {"auc": pytest.approx(0.9861), "logloss": pytest.approx(0.1484)}
    schema = FeatureSchema.from_dict(
        {"features": [{"name": n, "kind": "categorical"} for n in ("user", "item", "city")], "tasks": [{"name": "click"}]}
    ).with_vocab_sizes({"user": 9, "item": 7, "city": 5})
    model = build_model("FinalMLP", schema, config)
    assert model(random_batch(schema, 4)).logits["click"].shape == (4,)

"""FiGNN: attentional feature graph with node-specific message passing (Li et al., CIKM 2019)."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

import ctrkit
from ctrkit.models import build_model
from ctrkit.nn.graph import FiGNNLayer, GraphLayer
from ctrkit.testing import frappe_like_schema, random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_attention_over_neighbours_sums_to_one_without_self_loops():
    torch.manual_seed(0)
    layer = FiGNNLayer(5, 4)
    g = layer.attention_graph(torch.randn(3, 5, 4))
    assert g.shape == (3, 5, 5)
    torch.testing.assert_close(g.sum(-1), torch.ones(3, 5))
    assert (g.diagonal(dim1=1, dim2=2) == 0).all()
    assert (g >= 0).all()


def test_attention_equals_the_concatenated_pair_form():
    torch.manual_seed(1)
    Fn, D = 4, 3
    layer = FiGNNLayer(Fn, D)
    e = torch.randn(2, Fn, D)
    src, dst = zip(*product(range(Fn), repeat=2))
    pairs = torch.cat([e[:, list(src)], e[:, list(dst)]], dim=-1)  # (B, F*F, 2D)
    alpha = F.leaky_relu(layer.W_attn(pairs), 0.01).view(2, Fn, Fn)
    alpha = alpha.masked_fill(torch.eye(Fn, dtype=torch.bool), float("-inf"))
    torch.testing.assert_close(layer.attention_graph(e), torch.softmax(alpha, -1))


def test_graph_layer_uses_node_specific_weights():
    torch.manual_seed(2)
    gl = GraphLayer(3, 2)
    with torch.no_grad():
        gl.bias.normal_()
    g = torch.softmax(torch.randn(1, 3, 3), -1)
    h = torch.randn(1, 3, 2)
    expected = torch.stack(
        [gl.W_in[i] @ sum(g[0, i, j] * (gl.W_out[j] @ h[0, j]) for j in range(3)) + gl.bias for i in range(3)]
    )
    torch.testing.assert_close(gl(g, h)[0], expected)


def test_without_gru_each_step_adds_messages_and_the_residual():
    torch.manual_seed(3)
    layer = FiGNNLayer(3, 2, num_layers=1, use_gru=False, use_residual=True)
    e = torch.randn(2, 3, 2)
    g = layer.attention_graph(e)
    torch.testing.assert_close(layer(e), layer.gnn[0](g, e) + e + e)


def test_model_logit_is_the_attentional_prediction():
    schema = tiny_schema()
    model = build_model("FiGNN", schema, {"gnn_layers": 2, "embedding_dim": 3})
    model.eval()
    b = random_batch(schema, 4)
    with torch.no_grad():
        h = model.fignn(model.embedding(b))
        score = h @ model.fc.score.weight[0]
        weight = torch.sigmoid(h.flatten(1) @ model.fc.weight.weight.T)
        torch.testing.assert_close(model(b).logits["click"], (weight * score).sum(1))


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "FiGNN.yaml").read_text())
    model = build_model("FiGNN", frappe_like_schema(), cfg["model"]["params"])
    assert sum(p.numel() for p in model.parameters()) == 89090

"""SAM: the interaction layers against their explicit per-pair formulas, shapes per variant, the
BARS Frappe_x1 config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.sam import SAM2A, SAM2E, SAM3A, SAM3E, SAMBlock
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def _explicit(e, K=None, W=None):
    """sum-free reference: s_ij = <e_i, K e_j>, pair_ij = s_ij * (W_ij or e_i * e_j)."""
    B, F, D = e.shape
    out = torch.zeros(B, F, F, D)
    for i in range(F):
        for j in range(F):
            kj = e[:, j] if K is None else e[:, j] @ K.T
            s = (e[:, i] * kj).sum(-1, keepdim=True)
            out[:, i, j] = s * (W[i, j] if W is not None else e[:, i] * e[:, j])
    return out


def test_sam2_layers_match_the_pairwise_formula():
    torch.manual_seed(0)
    e = torch.randn(3, 4, 5)
    torch.testing.assert_close(SAM2E()(e), _explicit(e))
    layer = SAM2A(4, 5)
    with torch.no_grad():
        layer.W.normal_()
    torch.testing.assert_close(layer(e), _explicit(e, W=layer.W))


@pytest.mark.parametrize("residual", [False, True])
def test_sam3_layers_sum_the_pairwise_formula_over_j(residual):
    torch.manual_seed(0)
    e = torch.randn(3, 4, 5)
    a = SAM3A(4, 5, use_residual=residual)
    with torch.no_grad():
        a.W.normal_()
    res = a.Q(e) if residual else 0.0
    torch.testing.assert_close(a(e), _explicit(e, K=a.K.weight, W=a.W).sum(2) + res)
    b = SAM3E(5, use_residual=residual)
    res = b.Q(e) if residual else 0.0
    torch.testing.assert_close(b(e), _explicit(e, K=b.K.weight).sum(2) + res)


@pytest.mark.parametrize(
    "kind, agg, dim", [("SAM2A", "concat", 4 * 4 * 5), ("SAM2E", "concat", 80), ("SAM3A", "concat", 20), ("SAM3E", "weighted_pooling", 5), ("SAM3A", "mean_pooling", 5)]
)
def test_block_output_sizes(kind, agg, dim):
    block = SAMBlock(2, 4, 5, interaction_type=kind, aggregation=agg)
    assert block.output_dim == dim
    assert block(torch.randn(3, 4, 5)).shape == (3, dim)


def test_sam2_needs_concat():
    with pytest.raises(ValueError, match="concat"):
        SAMBlock(2, 4, 5, interaction_type="SAM2E", aggregation="sum_pooling")


def test_bars_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "SAM.yaml").read_text())
    config = make_config("SAM", cfg["model"]["params"])
    assert (config.interaction_type, config.num_interaction_layers, config.use_residual) == ("SAM3A", 4, True)
    assert cfg["bars"] == {"auc": pytest.approx(0.9801), "logloss": pytest.approx(0.1735)}
    schema = tiny_schema()
    assert build_model("SAM", schema, config)(random_batch(schema, 4)).logits["click"].shape == (4,)

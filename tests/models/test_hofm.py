"""HOFM: the order-t term is the ANOVA kernel; order 2 is FM's pairwise term."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.fm_family import anova_kernel
from ctrkit.nn.interactions import FMInteraction
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


def explicit_anova(e: torch.Tensor, t: int) -> torch.Tensor:
    out = torch.zeros(e.shape[0], dtype=e.dtype)
    for combo in combinations(range(e.shape[1]), t):
        prod = torch.ones_like(e[:, 0])
        for f in combo:
            prod = prod * e[:, f]
        out = out + prod.sum(-1)
    return out


def test_order_two_equals_fm_and_higher_orders_equal_subset_sums():
    torch.manual_seed(0)
    e = torch.randn(4, 7, 3, dtype=torch.float64)
    torch.testing.assert_close(anova_kernel(e, 2), FMInteraction()(e))
    for t in (3, 4, 5):
        torch.testing.assert_close(anova_kernel(e, t), explicit_anova(e, t))


def test_order_two_model_is_fm():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    hofm = build_model("HOFM", schema, {"embedding_dim": 4, "order": 2}).eval()
    scale_up(hofm)
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = hofm.embedding(b)
        torch.testing.assert_close(hofm(b).logits["click"], hofm.linear(b) + FMInteraction()(e))


def test_orders_use_separate_embeddings_unless_reused():
    schema = tiny_schema()
    sep = build_model("HOFM", schema, {"embedding_dim": 3, "order": 4})
    assert sep.embedding.dim == 3 * 3
    torch.manual_seed(0)
    scale_up(sep)
    b = random_batch(schema, 8)
    with torch.no_grad():
        es = sep.order_embeddings(b)
        expected = sep.linear(b) + sum(explicit_anova(e, t) for t, e in zip((2, 3, 4), es))
        torch.testing.assert_close(sep(b).logits["click"], expected, rtol=1e-4, atol=1e-4)
    reused = build_model("HOFM", schema, {"embedding_dim": 3, "order": 4, "reuse_embedding": True})
    assert reused.embedding.dim == 3


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "HOFM.yaml").read_text())
    model = build_model("HOFM", frappe_like_schema(), cfg["model"]["params"])
    assert n_params(model) == 113170
    assert cfg["bars"] == {"auc": pytest.approx(0.9742), "logloss": pytest.approx(0.2073)}

"""FwFM: FM with one weight per field pair; all weights 1 and no bias recovers FM's pairwise term."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
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


def test_unit_pair_weights_equal_fm_pairwise_term():
    schema = tiny_schema(sequence=True)
    torch.manual_seed(0)
    model = build_model("FwFM", schema, {"embedding_dim": 4, "linear_type": "LW"}).eval()
    scale_up(model)
    with torch.no_grad():
        model.pair_weight.weight.fill_(1.0)
        model.pair_weight.bias.zero_()
    b = random_batch(schema, 8)
    with torch.no_grad():
        e = model.embedding(b)
        expected = FMInteraction()(e) + model.linear_weight(b).sum(dim=(1, 2))
        torch.testing.assert_close(model(b).logits["click"], expected)


@pytest.mark.parametrize("linear_type", ["LW", "FeLV", "FiLV"])
def test_linear_variants_build_and_run(linear_type):
    schema = tiny_schema()
    model = build_model("FwFM", schema, {"embedding_dim": 3, "linear_type": linear_type})
    assert model(random_batch(schema, 4)).logits["click"].shape == (4,)


def test_bars_frappe_config_matches_logged_parameter_count():
    cfg = yaml.safe_load((BARS / "FwFM.yaml").read_text())
    model = build_model("FwFM", frappe_like_schema(), cfg["model"]["params"])
    assert n_params(model) == 107826
    assert cfg["bars"] == {"auc": pytest.approx(0.9776), "logloss": pytest.approx(0.203)}

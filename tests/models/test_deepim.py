"""DeepIM: the interaction machine's terms are the elementary symmetric polynomials of the fields
(order 2 is FM's pairwise term), the BARS Frappe_x1 config."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, make_config
from ctrkit.nn.deepim import InteractionMachine, elementary_symmetric
from ctrkit.nn.interactions import FMInteraction, bi_interaction
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_order_two_term_is_fm_pairwise_term():
    torch.manual_seed(0)
    e = torch.randn(4, 6, 5, dtype=torch.float64)
    t = elementary_symmetric(e, 2)
    torch.testing.assert_close(t[0], e.sum(1))
    torch.testing.assert_close(t[1], bi_interaction(e))
    torch.testing.assert_close(t[1].sum(-1), FMInteraction()(e))


@pytest.mark.parametrize("order", [3, 4, 5])
def test_higher_orders_match_explicit_sums_over_field_subsets(order):
    torch.manual_seed(0)
    e = torch.randn(3, 6, 4, dtype=torch.float64)
    t = elementary_symmetric(e, order)
    for k in range(1, order + 1):
        explicit = sum(torch.stack([e[:, i] for i in idx]).prod(0) for idx in itertools.combinations(range(6), k))
        torch.testing.assert_close(t[k - 1], explicit)


def test_machine_is_linear_in_the_terms():
    torch.manual_seed(0)
    im = InteractionMachine(4, order=3)
    e = torch.randn(5, 6, 4)
    assert im.terms(e).shape == (5, 12)
    torch.testing.assert_close(im(e), im.fc(im.terms(e)))
    with pytest.raises(ValueError):
        InteractionMachine(4, order=6)


def test_empty_hidden_units_is_im_only():
    schema = tiny_schema()
    m = build_model("DeepIM", schema, {"hidden_units": ()})
    assert m.dnn is None
    b = random_batch(schema, 4)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(b).logits["click"], m.im(m.embedding(b)).squeeze(-1))


def test_bars_frappe_config_builds():
    cfg = yaml.safe_load((BARS / "DeepIM.yaml").read_text())
    config = make_config("DeepIM", cfg["model"]["params"])
    assert (config.im_order, config.hidden_units, config.net_batch_norm) == (3, (400, 400, 400), True)
    assert cfg["bars"] == {"auc": pytest.approx(0.9844), "logloss": pytest.approx(0.149)}

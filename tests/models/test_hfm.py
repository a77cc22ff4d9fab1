"""HFM / HFM+: circular convolution and correlation against their definitions, the holographic
layer's pair order, the two registered variants, the BARS Frappe_x1 configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import ctrkit
from ctrkit.models import build_model, get_model_info, make_config
from ctrkit.nn.hfm import HolographicInteraction, circular_convolution, circular_correlation
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


@pytest.mark.parametrize("D", [5, 8])
def test_circular_ops_match_explicit_sums(D):
    torch.manual_seed(0)
    a, b = torch.randn(3, D, dtype=torch.float64), torch.randn(3, D, dtype=torch.float64)
    conv = torch.stack([sum(a[:, j] * b[:, (k - j) % D] for j in range(D)) for k in range(D)], -1)
    corr = torch.stack([sum(a[:, j] * b[:, (k + j) % D] for j in range(D)) for k in range(D)], -1)
    torch.testing.assert_close(circular_convolution(a, b), conv)
    torch.testing.assert_close(circular_correlation(a, b), corr)
    torch.testing.assert_close(circular_convolution(a, b), circular_convolution(b, a))  # commutative


def test_holographic_pairs_in_row_major_order():
    torch.manual_seed(0)
    e = torch.randn(2, 4, 6)
    layer = HolographicInteraction(4, "circular_correlation")
    out = layer(e)
    assert out.shape == (2, 6, 6) and layer.num_pairs == 6
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    for p, (i, j) in enumerate(pairs):
        torch.testing.assert_close(out[:, p], circular_correlation(e[:, i], e[:, j]))
    torch.testing.assert_close(HolographicInteraction(4, "hadamard_product")(e)[:, 0], e[:, 0] * e[:, 1])


def test_hfm_and_hfm_plus_are_separate_models():
    assert get_model_info("HFM").config_class().use_dnn is False
    assert get_model_info("HFM+").config_class().use_dnn is True
    schema = tiny_schema()
    torch.manual_seed(0)
    plain, plus = build_model("HFM", schema), build_model("HFM+", schema)
    assert plain.dnn is None and plain.proj_h is not None
    assert plus.dnn is not None and plus.proj_h is None
    b = random_batch(schema, 8)
    plain.eval()
    with torch.no_grad():
        pairs = plain.interaction(plain.embedding(b))
        expected = plain.proj_h(pairs.sum(1)).squeeze(-1) + plain.linear(b)
        torch.testing.assert_close(plain(b).logits["click"], expected)


@pytest.mark.parametrize(
    "name, file, ctype, auc, logloss",
    [("HFM", "HFM.yaml", "circular_convolution", 0.9386, 0.2815), ("HFM+", "HFMPlus.yaml", "circular_correlation", 0.9827, 0.1543)],
)
def test_bars_frappe_configs_build(name, file, ctype, auc, logloss):
    cfg = yaml.safe_load((BARS / file).read_text())
    assert cfg["model"]["name"] == name
    config = make_config(name, cfg["model"]["params"])
    assert config.interaction_type == ctype
    assert cfg["bars"] == {"auc": pytest.approx(auc), "logloss": pytest.approx(logloss)}
    schema = tiny_schema()
    assert build_model(name, schema, config)(random_batch(schema, 4)).logits["click"].shape == (4,)


def test_circulant_form_for_export_equals_fft():
    # Exports trace the circulant gather (ONNX has no FFT); it must give the FFT's values.
    from ctrkit.nn.hfm import _circulant, circular_convolution, circular_correlation

    a, b = torch.randn(3, 4, 10, dtype=torch.float64), torch.randn(3, 4, 10, dtype=torch.float64)
    torch.testing.assert_close(_circulant(a, b, -1), circular_convolution(a, b))
    torch.testing.assert_close(_circulant(a, b, 1), circular_correlation(a, b))

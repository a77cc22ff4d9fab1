"""ESMM: the conversion logit is logit(pCTR * pCVR), exactly and finitely."""

from __future__ import annotations

import torch

from ctrkit.models import build_model
from ctrkit.models.esmm import ctcvr_logit
from ctrkit.testing import random_batch, tiny_schema


def test_pctcvr_is_pctr_times_pcvr():
    schema = tiny_schema(tasks=("click", "conversion"))
    torch.manual_seed(0)
    model = build_model("ESMM", schema, {"embedding_dim": 8, "tower_hidden_units": (16,)}).eval()
    with torch.no_grad():
        out = model(random_batch(schema, 64))
    pctr, pcvr = out.extras["pctr"].double(), out.extras["pcvr"].double()
    torch.testing.assert_close(out.extras["pctcvr"].double(), pctr * pcvr)
    torch.testing.assert_close(torch.sigmoid(out.logits["conversion"].double()), pctr * pcvr, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.sigmoid(out.logits["click"]), out.extras["pctr"])
    # The textbook log-space formula agrees where it is itself finite (float64, moderate logits).
    a, b = torch.randn(1000, dtype=torch.float64) * 5, torch.randn(1000, dtype=torch.float64) * 5
    logp = torch.nn.functional.logsigmoid(a) + torch.nn.functional.logsigmoid(b)
    torch.testing.assert_close(ctcvr_logit(a, b), logp - torch.log1p(-torch.exp(logp)))


def test_conversion_logit_finite_for_extreme_inputs():
    v = torch.tensor([-1e30, -1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4, 1e30])
    a, b = torch.meshgrid(v, v, indexing="ij")
    a = a.reshape(-1).clone().requires_grad_(True)
    b = b.reshape(-1).clone().requires_grad_(True)
    z = ctcvr_logit(a, b)
    assert torch.isfinite(z).all()
    z.sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    # both towers saturated high: pCTCVR -> 1, logit ~ min(a, b); one tower very low: logit ~ that one
    assert torch.allclose(ctcvr_logit(torch.tensor(100.0), torch.tensor(100.0)), torch.tensor(100.0 - 0.6931472))
    assert torch.allclose(ctcvr_logit(torch.tensor(-1e4), torch.tensor(3.0)), torch.tensor(-1e4 + 3.0 - 3.0486), rtol=1e-6)

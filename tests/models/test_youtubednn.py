"""YoutubeDNN: BARS's leaderboard name for the DNN baseline; must be the same model as DNN."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

import ctrkit
from ctrkit.models import build_model, get_model_info
from ctrkit.testing import random_batch, tiny_schema

BARS = Path(ctrkit.__file__).parent / "configs" / "bars" / "frappe_x1"


def test_same_model_and_config_as_dnn():
    assert get_model_info("YoutubeDNN").config_class is get_model_info("DNN").config_class
    schema = tiny_schema()
    params = {"hidden_units": [8, 4], "batch_norm": True}
    torch.manual_seed(0)
    a = build_model("YoutubeDNN", schema, params)
    torch.manual_seed(0)
    b = build_model("DNN", schema, params)
    a.eval(), b.eval()
    batch = random_batch(schema, 8)
    with torch.no_grad():
        torch.testing.assert_close(a(batch).logits["click"], b(batch).logits["click"], rtol=0, atol=0)


def test_bars_config_is_dnn_config():
    mine = yaml.safe_load((BARS / "YoutubeDNN.yaml").read_text())
    dnn = yaml.safe_load((BARS / "DNN.yaml").read_text())
    assert mine["model"]["name"] == "YoutubeDNN"
    assert mine["model"]["params"] == dnn["model"]["params"]
    assert mine["training"] == dnn["training"]
    assert mine["bars"] == {"auc": 0.9833, "logloss": 0.1622}

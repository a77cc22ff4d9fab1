"""Real tiny samples run end to end: their schemas load, encode and train (no accuracy claim at
this size). Skipped when ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from ctrkit.train.run import train

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tiny_samples"
pytestmark = pytest.mark.skipif(not SAMPLES.exists(), reason="shared/data/tiny_samples not present")

FAST = {"epochs": 1, "batch_size": 64, "progress": False, "threads": 1, "prefetch": 0, "seed": 1}


def run(tmp_path: Path, schema: dict, files: dict[str, Path], model: str, params: dict | None = None) -> dict:
    schema_path = tmp_path / "schema.yaml"
    schema_path.write_text(yaml.safe_dump(schema))
    cfg = {
        "dataset": {"name": "generic", "schema": str(schema_path), "store": str(tmp_path / "store"), **{k: str(v) for k, v in files.items()}},
        "model": {"name": model, "params": params or {}},
        "training": FAST,
        "run_dir": str(tmp_path / "run"),
    }
    return train(cfg).metrics


def test_taobao_ad_sequence_sample_trains_din(tmp_path):
    d = SAMPLES / "taobao_ad_seq"
    cats = ["userid", "adgroup_id", "pid", "cate_id", "campaign_id", "customer", "brand", "cms_segid",
            "cms_group_id", "final_gender_code", "age_level", "pvalue_level", "shopping_level", "occupation",
            "new_user_class_level"]  # fmt: skip
    schema = {
        "features": [{"name": c, "kind": "categorical"} for c in cats]
        + [
            {"name": "price", "kind": "numeric", "normalizer": "log"},
            {"name": "click_sequence", "kind": "sequence", "delimiter": "^", "max_len": 20, "share_vocab_with": "adgroup_id"},
        ],
        "tasks": [{"name": "click", "column": "clk"}],
        "group": "userid",
    }
    files = {s: d / f"fuxictr_tiny_csv_{s}_sample.csv" for s in ("train", "valid", "test")}
    m = run(tmp_path, schema, files, "DIN", {"embedding_dim": 8})
    assert set(m["test"]) == {"click"}
    assert 0.0 <= m["test"]["click"]["logloss"] < 5


def test_aliexpress_multitask_sample_trains_esmm(tmp_path):
    d = SAMPLES / "aliexpress_mtl"
    cols = pl.read_csv(d / "fuxictr_tiny_mtl_train.csv", n_rows=1).columns
    schema = {
        "features": [{"name": c, "kind": "categorical"} for c in cols if c.startswith("categorical_")]
        + [{"name": c, "kind": "numeric"} for c in cols if c.startswith("numerical_")],
        "tasks": [{"name": "click"}, {"name": "conversion"}],
    }
    files = {"train": d / "fuxictr_tiny_mtl_train.csv", "valid": d / "fuxictr_tiny_mtl_test.csv", "test": d / "fuxictr_tiny_mtl_test.csv"}
    m = run(tmp_path, schema, files, "ESMM", {"embedding_dim": 8})
    assert set(m["test"]) == {"click", "conversion"}


def test_ali_ccp_multitask_sample_trains_mmoe(tmp_path):
    d = SAMPLES / "ali_ccp_mtl"
    cols = pl.read_csv(d / "torch_rechub_ali_ccp_train_sample.csv", n_rows=1).columns
    schema = {
        "features": [{"name": c, "kind": "numeric" if c.startswith("D") else "categorical"} for c in cols if c not in ("click", "purchase")],
        "tasks": [{"name": "click"}, {"name": "purchase"}],
    }
    files = {s: d / f"torch_rechub_ali_ccp_{s if s != 'valid' else 'val'}_sample.csv" for s in ("train", "valid", "test")}
    m = run(tmp_path, schema, files, "MMoE", {"embedding_dim": 8})
    assert set(m["test"]) == {"click", "purchase"}

"""Suite expansion: dataset x model x grid point x seed, stable ids, strict keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ctrkit.bench.suite import load_suite
from ctrkit.errors import ConfigError


def suite_dict(tmp_path: Path) -> dict:
    return {
        "name": "t",
        "out": str(tmp_path / "out"),
        "datasets": [{"label": "synth", "synthetic": {"rows": 3000}}],
        "training": {"epochs": 1},
        "grid": {"training.learning_rate": [1.0e-3, 3.0e-3]},
        "models": [
            {"name": "LR"},
            {"name": "DNN", "params": {"embedding_dim": 4, "hidden_units": [8]}, "grid": {"model.params.net_dropout": [0.0, 0.1, 0.2]}},
        ],
        "seeds": [1, 2, 3],
    }


def test_grid_times_seeds(tmp_path):
    s = load_suite(suite_dict(tmp_path))
    by_model = {m: [r for r in s.runs if r.model == m] for m in ("LR", "DNN")}
    assert len(by_model["LR"]) == 2 * 3
    assert len(by_model["DNN"]) == 2 * 3 * 3
    assert len({r.run_id for r in s.runs}) == len(s.runs)
    # a configuration's seeds share its config_hash
    assert len({r.config_hash for r in by_model["DNN"]}) == 6
    r = next(r for r in by_model["DNN"] if r.grid_point == {"model.params.net_dropout": 0.2, "training.learning_rate": 0.003})
    assert r.config["model"]["params"]["net_dropout"] == 0.2 and r.config["training"]["learning_rate"] == 0.003
    assert r.config["dataset"]["source"] == str((tmp_path / "out" / "data" / "synth").resolve())


def test_ids_are_stable(tmp_path):
    a = load_suite(suite_dict(tmp_path))
    b = load_suite(suite_dict(tmp_path))
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    # from a file as from a mapping; threads do not change an id, a learning rate does
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(suite_dict(tmp_path)))
    assert [r.run_id for r in load_suite(p).runs] == [r.run_id for r in a.runs]
    d = suite_dict(tmp_path)
    d["training"]["threads"] = 1
    assert [r.run_id for r in load_suite(d).runs] == [r.run_id for r in a.runs]
    d["grid"] = {"training.learning_rate": [1.0e-3, 2.0e-3]}
    ids = {r.run_id for r in load_suite(d).runs}
    assert ids & {r.run_id for r in a.runs} and ids != {r.run_id for r in a.runs}


def test_base_config_and_errors(tmp_path):
    d = suite_dict(tmp_path)
    d["models"] = [{"base": "bars/frappe_x1/FM.yaml", "training": {"epochs": 1}}]
    d.pop("grid")
    s = load_suite(d)
    assert len(s.runs) == 3 and s.runs[0].model == "FM"
    assert s.runs[0].config["training"]["embedding_regularizer"] == 5.0e-06
    bad = suite_dict(tmp_path)
    bad["modles"] = []
    with pytest.raises(ConfigError, match="modles"):
        load_suite(bad)
    bad = suite_dict(tmp_path)
    bad["models"][1]["params"]["hiden_units"] = [3]
    with pytest.raises(ConfigError, match="hiden_units"):
        load_suite(bad)


def test_builtin_suite_expands():
    from ctrkit.bench.suite import PACKAGE_CONFIGS

    s = load_suite(PACKAGE_CONFIGS / "suites" / "synthetic_ceiling.yaml", out="/tmp/never-written")
    assert {r.model for r in s.runs} == {"LR", "FM", "DNN", "DeepFM", "DCNv2"}
    assert len(s.runs) == 5 * 3

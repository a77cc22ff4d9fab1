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


def test_runs_are_seed_major(tmp_path):
    # every configuration's first seed comes before any configuration's second seed
    runs = load_suite(suite_dict(tmp_path)).runs
    seeds = [r.seed for r in runs]
    assert seeds == sorted(seeds)
    assert {r.config_hash for r in runs[: len(runs) // 3]} == {r.config_hash for r in runs}
    assert [r.model for r in runs[:2]] == ["LR", "LR"] and runs[2].model == "DNN"


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


def test_search_spaces(tmp_path):
    d = suite_dict(tmp_path)
    d["search"] = {"trials": 5, "space": {"training.learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}}
    d["models"][1]["search"] = {
        "trials": 7,
        "pruner": "none",
        "space": {"model.params.hidden_units": [[8], [16, 8]], "model.params.embedding_dim": {"low": 2, "high": 8, "step": 2}},
    }
    s = load_suite(d)
    assert len(s.runs) == 2 * 3 + 2 * 3 * 3  # the grid runs are unchanged by a search
    lr, dnn = s.searches
    assert (lr.study_name, lr.trials, lr.pruner) == ("t/synth/LR", 5, {"startup_trials": 3, "warmup_epochs": 0})
    assert (dnn.study_name, dnn.trials, dnn.pruner) == ("t/synth/DNN", 7, None)
    assert set(dnn.space) == {"training.learning_rate", "model.params.hidden_units", "model.params.embedding_dim"}
    assert dnn.space["model.params.embedding_dim"].kind == "int" and dnn.space["training.learning_rate"].kind == "float"
    assert dnn.space["model.params.hidden_units"].choices == ([8], [16, 8])
    assert dnn.config["training"]["seed"] == 1  # trials train with the first seed
    assert "net_dropout" not in dnn.config["model"].get("params", {})  # the grid is not applied
    # a suite-wide search without a space tunes only the models that give one
    d = suite_dict(tmp_path)
    d["search"] = {"trials": 5}
    d["models"][0]["search"] = {"space": {"training.learning_rate": [1.0e-3, 1.0e-2]}}
    assert [x.model for x in load_suite(d).searches] == ["LR"]


@pytest.mark.parametrize(
    "space, key",
    [
        ({"training.learning_rat": {"low": 1.0e-4, "high": 1.0e-2}}, "learning_rat"),
        ({"model.params.hiden_units": [[8]]}, "hiden_units"),
        ({"training.learning_rate": {"low": 1.0e-2, "high": 1.0e-4}}, "must be below"),
        ({"training.learning_rate": {"low": 0.0, "high": 1.0, "log": True}}, "log scale"),
        ({"training.learning_rate": {"low": 1.0e-4, "hihg": 1.0}}, "hihg"),
        ({"training.learning_rate": 0.01}, "list of choices"),
        ({}, "non-empty 'space'"),
    ],
)
def test_search_space_errors(tmp_path, space, key):
    d = suite_dict(tmp_path)
    d["models"][1]["search"] = {"space": space}
    with pytest.raises(ConfigError, match=key) as e:
        load_suite(d)
    assert "models.1.search" in str(e.value)


def test_search_section_errors(tmp_path):
    for search, key in (({"method": "grid", "space": {"training.epochs": [1]}}, "method"),
                        ({"trials": 0, "space": {"training.epochs": [1]}}, "trials"),
                        ({"trails": 3}, "trails"),
                        ({"pruner": {"warmup": 1}, "space": {"training.epochs": [1]}}, "warmup")):  # fmt: skip
        d = suite_dict(tmp_path)
        d["models"][0]["search"] = search
        with pytest.raises(ConfigError, match=key):
            load_suite(d)

"""The built-in BARS Frappe_x1 suite covers every BARS Frappe_x1 config, by reference, with five
seeds; the leaderboard's BARS column reads the same files. Expands the suite only (never runs it)."""

from __future__ import annotations

import yaml

from ctrkit.bench.report import bars_reference
from ctrkit.bench.suite import PACKAGE_CONFIGS, load_suite
from ctrkit.models.registry import list_models

SUITE = PACKAGE_CONFIGS / "suites" / "frappe_x1_bars.yaml"
BARS_DIR = PACKAGE_CONFIGS / "bars" / "frappe_x1"


def _registered() -> set[str]:
    return {m.name for m in list_models()}


def test_suite_covers_every_bars_config_by_reference(tmp_path):
    raw = yaml.safe_load(SUITE.read_text())
    files = sorted(p.name for p in BARS_DIR.glob("*.yaml"))
    assert files, "no BARS Frappe_x1 configs found"
    # every config is referenced (not copied): the suite's model entries are exactly the bases
    assert sorted(m["base"].removeprefix("bars/frappe_x1/") for m in raw["models"]) == files
    assert all(set(m) == {"base"} for m in raw["models"])
    assert len(raw["seeds"]) >= 5 and len(set(raw["seeds"])) == len(raw["seeds"])

    suite = load_suite(SUITE, out=tmp_path / "never-run")
    registered = _registered()
    by_model: dict[str, list] = {}
    for r in suite.runs:
        by_model.setdefault(r.model, []).append(r)
    assert len(suite.runs) == len(files) * len(raw["seeds"])
    for name in files:
        cfg = yaml.safe_load((BARS_DIR / name).read_text())
        model = cfg["model"]["name"]
        assert model in registered
        runs = by_model[model]
        assert sorted(r.seed for r in runs) == sorted(raw["seeds"])
        assert len({r.config_hash for r in runs}) == 1  # one configuration, five seeds
        for r in runs:
            # BARS's tuned settings, unchanged: model section as in the file; training as in the file
            # except the seed (the suite's) and progress output
            assert r.config["model"] == cfg["model"]
            expected = {k: v for k, v in cfg["training"].items() if k != "seed"}
            got = {k: v for k, v in r.config["training"].items() if k not in ("seed", "progress")}
            assert got == expected, name
            assert r.config["dataset"]["name"] == "frappe_x1"
            assert r.config["training"].get("embedding_mode", "sparse") in ("sparse", "dense")


def test_bars_reference_reads_the_same_files():
    ref = bars_reference("frappe_x1")
    for p in BARS_DIR.glob("*.yaml"):
        cfg = yaml.safe_load(p.read_text())
        if cfg.get("bars"):
            assert ref[cfg["model"]["name"]]["auc"] == cfg["bars"]["auc"]
        else:
            assert cfg["model"]["name"] not in ref  # no published figure: the column shows '-'
    assert bars_reference("no_such_dataset") == {}

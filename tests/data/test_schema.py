"""Schema YAML is strict (unknown key / wrong type -> ConfigError naming the key and the file) and
round-trips through JSON and YAML, fitted or not."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctrkit.data import DataSpec, build_store, source_file
from ctrkit.errors import ConfigError
from ctrkit.schema import FeatureSchema

YAML = """\
features:
  - {name: user, kind: categorical, min_count: 2}
  - {name: price, kind: numeric, normalizer: log, fill_value: 0}
  - {name: I1, kind: numeric, bucketize: {method: criteo_log2}, min_count: 10}
  - {name: hist, kind: sequence, delimiter: "^", max_len: 5, share_vocab_with: item}
  - {name: item, kind: categorical}
tasks:
  - {name: click, column: clk}
group: user
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "schema.yaml"
    p.write_text(text)
    return p


def test_valid_yaml_loads(tmp_path: Path) -> None:
    s = FeatureSchema.from_yaml(write(tmp_path, YAML))
    assert [f.name for f in s.categorical] == ["user", "I1", "item"]
    assert [f.name for f in s.numeric] == ["price"]
    assert s.vocab_owner("hist") == "item"
    assert s.source_columns == ["user", "price", "I1", "hist", "item", "clk"]


def test_unknown_key(tmp_path: Path) -> None:
    p = write(tmp_path, YAML.replace("min_count: 2", "min_cnt: 2"))
    with pytest.raises(ConfigError) as e:
        FeatureSchema.from_yaml(p)
    assert e.value.key == "features.0.min_cnt"
    assert str(p) in str(e.value) and "min_cnt" in str(e.value) and "unknown key" in str(e.value)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    p = write(tmp_path, YAML + "labels: [clk]\n")
    with pytest.raises(ConfigError) as e:
        FeatureSchema.from_yaml(p)
    assert e.value.key == "labels" and e.value.file == str(p)


@pytest.mark.parametrize(
    "old,new,key",
    [
        ("min_count: 2", "min_count: two", "features.0.min_count"),
        ("min_count: 2", "min_count: 2.5", "features.0.min_count"),
        ("max_len: 5", "max_len: '5'", "features.3.max_len"),
        ("normalizer: log", "normalizer: zscore", "features.1.normalizer"),
        ("method: criteo_log2", "method: log2", "features.2.bucketize.method"),
    ],
)
def test_wrong_type(tmp_path: Path, old: str, new: str, key: str) -> None:
    p = write(tmp_path, YAML.replace(old, new))
    with pytest.raises(ConfigError) as e:
        FeatureSchema.from_yaml(p)
    assert e.value.key == key
    assert str(p) in str(e.value) and key in str(e.value)


def test_missing_required_key(tmp_path: Path) -> None:
    p = write(tmp_path, YAML.replace("  - {name: click, column: clk}\n", "  - {column: clk}\n"))
    with pytest.raises(ConfigError) as e:
        FeatureSchema.from_yaml(p)
    assert e.value.key == "tasks.0.name" and "missing" in str(e.value)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        FeatureSchema.from_yaml(write(tmp_path, "features: [\n"))
    assert "YAML" in str(e.value)
    with pytest.raises(ConfigError) as e:
        FeatureSchema.from_yaml(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(e.value)


def test_share_vocab_must_name_an_owner(tmp_path: Path) -> None:
    p = write(tmp_path, YAML.replace("share_vocab_with: item", "share_vocab_with: nothing"))
    with pytest.raises(ConfigError) as e:
        FeatureSchema.from_yaml(p)
    assert "nothing" in str(e.value)


def test_json_round_trip(tmp_path: Path) -> None:
    s = FeatureSchema.from_yaml(write(tmp_path, YAML))
    assert FeatureSchema.from_json(s.to_json()) == s
    s.to_json(tmp_path / "s.json")
    assert FeatureSchema.from_json(tmp_path / "s.json") == s
    s.to_yaml(tmp_path / "s2.yaml")
    assert FeatureSchema.from_yaml(tmp_path / "s2.yaml") == s


def test_fitted_schema_round_trip(tmp_path: Path) -> None:
    schema = FeatureSchema.from_dict(
        {"features": [{"name": "a", "kind": "categorical"}, {"name": "h", "kind": "sequence", "share_vocab_with": "a"}],
         "tasks": [{"name": "click", "column": "y"}]}  # fmt: skip
    )
    (tmp_path / "t.csv").write_text("a,h,y\nu,u^v,1\nv,,0\n")
    store = build_store(DataSpec(schema, {"train": source_file(tmp_path / "t.csv")}), tmp_path / "st", progress=False)
    fitted = store.schema
    assert fitted.is_fitted and fitted.vocab_size("a") == 4 and fitted.vocab_size("h") == 4
    assert FeatureSchema.from_json(fitted.to_json()) == fitted

"""``ctrkit data``: every subcommand has --help; list, prepare, report, split, download run end to
end on tiny files (and Frappe_x1 from the shared copy when present); errors exit 1 with a message
naming the problem."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ctrkit.cli import main
from ctrkit.data.store import Store

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
FRAPPE = SHARED / "frappe_x1"
CRITEO_RAW = SHARED / "criteo_sample" / "train_head10k.txt"

SCHEMA = """\
features:
  - {name: a, kind: categorical, min_count: 2}
  - {name: x, kind: numeric}
tasks:
  - {name: click, column: y}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def generic_dir(tmp_path: Path, train: str = "a,x,y\nu,1,1\nu,2,0\nv,3,1\nu,4,0\n") -> Path:
    d = tmp_path / "mydata"
    d.mkdir(exist_ok=True)
    (d / "schema.yaml").write_text(SCHEMA)
    (d / "train.csv").write_text(train)
    (d / "valid.csv").write_text("a,x,y\nu,1,1\nw,2,0\n")
    (d / "test.csv").write_text("a,x,y\nv,1,0\n")
    return d


@pytest.mark.parametrize("sub", [[], ["list"], ["download"], ["split"], ["prepare"], ["report"], ["synth"]])
def test_help(sub: list[str]) -> None:
    res = run("data", *sub, "--help")
    assert res.exit_code == 0 and "Usage:" in res.output
    if sub:
        assert len(res.output.split("\n\n")[1].strip()) > 10  # a real description


def test_data_group_listed_in_main_help() -> None:
    assert "data" in run("--help").output


def test_list() -> None:
    res = run("data", "list")
    assert res.exit_code == 0
    for name in ("frappe_x1", "movielenslatest_x1", "criteo_x1", "criteo_x4", "avazu_x1", "avazu_x4", "kkbox_x1", "generic"):
        assert name in res.output
    assert "202,027/57,722/28,860" in res.output
    info = json.loads(run("data", "list", "--json").output)
    assert any(d["name"] == "criteo_x4" and d["files"][0]["md5"] == "4a53bb7cbc0e4ee25f9d6a73ed824b1a" for d in info)


def test_prepare_and_report_generic(tmp_path: Path) -> None:
    d = generic_dir(tmp_path)
    store = tmp_path / "st"
    res = run("data", "prepare", "generic", "--source", str(d), "--store", str(store), "--quiet")
    assert res.exit_code == 0, res.output
    assert "train 4, valid 2, test 1" in res.output and "0 rejected" in res.output
    res = run("data", "report", "generic", "--source", str(d), "--store", str(store), "--quiet")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    train_line = next(line for line in lines if line.startswith("train"))
    assert train_line.split() == ["train", "4", "0", "2", "0.5000"]
    a_line = next(line for line in lines if line.startswith("a "))
    # vocabulary {u} (v seen once < min_count 2) + 2 reserved; valid OOV: w -> 1 of 2 rows
    assert a_line.split() == ["a", "categorical", "2", "3", "25.0000%", "50.0000%", "100.0000%"]
    rep = json.loads(run("data", "report", "generic", "--store", str(store), "--source", str(d), "--json", "--quiet").output)
    assert rep["splits"]["valid"]["tasks"]["click"] == {"positives": 1, "rate": 0.5}
    assert rep["fields"]["a"]["oov"]["valid"] == {"count": 1, "rate": 0.5}
    assert rep["numeric"] == ["x"]


def test_report_existing_store_without_source(tmp_path: Path) -> None:
    d = generic_dir(tmp_path)
    run("data", "prepare", "generic", "--source", str(d), "--store", str(tmp_path / "st"), "--quiet")
    res = run("data", "report", "frappe_x1", "--store", str(tmp_path / "st"))
    assert res.exit_code == 0 and "train" in res.output
    res = run("data", "report", "frappe_x1", "--store", str(tmp_path / "nothing"))
    assert res.exit_code == 1 and "manifest" in res.output and "--source" in res.output


def test_default_store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = generic_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = run("data", "prepare", "generic", "--source", str(d), "--quiet")
    assert res.exit_code == 0, res.output
    assert Store.open(tmp_path / "stores" / "generic").rows("train") == 4


def test_skip_bad_rows(tmp_path: Path) -> None:
    d = generic_dir(tmp_path, train="a,x,y\nu,1,1\nu,oops,0\nv,3\nu,4,0\n")
    store = tmp_path / "st"
    res = run("data", "prepare", "generic", "--source", str(d), "--store", str(store), "--quiet")
    assert res.exit_code == 1
    assert "train.csv" in res.output and "line 4" in res.output  # structure is checked first
    res = run("data", "prepare", "generic", "--source", str(d), "--store", str(store), "--skip-bad-rows", "--quiet")
    assert res.exit_code == 0 and "2 rejected" in res.output
    assert (store / "rejects" / "train.csv").exists()
    report = run("data", "report", "generic", "--store", str(store), "--source", str(d), "--skip-bad-rows", "--quiet").output
    assert next(line for line in report.splitlines() if line.startswith("train")).split()[:3] == ["train", "2", "2"]


def test_generic_explicit_files_and_read_options(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCHEMA)
    (tmp_path / "tr.txt").write_text("u|1|1\nu|2|0\n")
    res = run("data", "prepare", "generic", "--train", str(tmp_path / "tr.txt"), "--schema", str(tmp_path / "s.yaml"),
              "--format", "csv", "--no-header", "--columns", "a,x,y", "--sep", "|", "--store", str(tmp_path / "st"), "--quiet")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "train 2" in res.output


def test_missing_files_and_unknown_dataset(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = run("data", "prepare", "frappe_x1", "--source", str(tmp_path / "empty"), "--store", str(tmp_path / "st"))
    assert res.exit_code == 1
    assert "train.csv" in res.output and "ctrkit data download frappe_x1" in res.output
    res = run("data", "prepare", "nope_x1", "--source", str(tmp_path / "empty"))
    assert res.exit_code == 2 and "unknown dataset" in res.output
    res = run("data", "prepare", "frappe_x1")
    assert res.exit_code == 2 and "--source" in res.output


def test_download_from_local_url_and_source(tmp_path: Path) -> None:
    texts = {"train": "label,user_id,item_id,tag_id\n1,1,2,3\n", "valid": "label,user_id,item_id,tag_id\n0,1,2,3\n",
             "test": "label,user_id,item_id,tag_id\n1,1,2,4\n"}  # fmt: skip
    archive = tmp_path / "MovielensLatest_x1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for s, t in texts.items():
            zf.writestr(f"{s}.csv", t)
    # the published md5s cannot match these stand-in files: verification rejects them ...
    res = run("data", "download", "movielenslatest_x1", "--out", str(tmp_path / "out"), "--url", archive.as_uri(), "--quiet")
    assert res.exit_code == 1 and "md5 mismatch" in res.output
    assert not list((tmp_path / "out").glob("*.csv"))
    # ... and are installed only when verification is switched off
    res = run("data", "download", "movielenslatest_x1", "--out", str(tmp_path / "out"), "--source", str(archive), "--no-verify", "--quiet")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "test.csv").read_text() == texts["test"]
    assert hashlib.md5((tmp_path / "out" / "train.csv").read_bytes(), usedforsecurity=False).hexdigest() == hashlib.md5(
        texts["train"].encode(), usedforsecurity=False
    ).hexdigest()


@pytest.mark.skipif(not CRITEO_RAW.exists(), reason="shared Criteo sample not present")
def test_split_and_prepare_criteo_x4(tmp_path: Path) -> None:
    res = run("data", "split", "criteo_x4", str(CRITEO_RAW), "--out", str(tmp_path / "split"), "--quiet")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "split" / "valid.csv").exists()
    res = run("data", "prepare", "criteo_x4", "--source", str(tmp_path / "split"), "--store", str(tmp_path / "st"), "--quiet")
    assert res.exit_code == 0, res.output
    assert "train 7,998, valid 1,001, test 1,001" in res.output
    report = run("data", "report", "criteo_x4", "--store", str(tmp_path / "st")).output
    assert "bucketized" in report and "I13" in report and "C26" in report


@pytest.mark.skipif(not (FRAPPE / "valid.csv").exists(), reason="shared Frappe_x1 not present")
def test_report_frappe_x1(tmp_path: Path) -> None:
    res = run("data", "report", "frappe_x1", "--source", str(FRAPPE), "--store", str(tmp_path / "frappe"), "--quiet")
    assert res.exit_code == 0, res.output
    out = res.output
    for text in ("202,027", "57,722", "28,860", "67,604", "0.3346", "user", "city"):
        assert text in out
    assert next(line for line in out.splitlines() if line.startswith("weekday")).split()[3] == "9"  # 7 days + 2

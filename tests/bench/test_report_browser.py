"""leaderboard.html in a real browser: headless Chromium runs the page's sort script (driven by the
URL fragment), the DOM it leaves is checked row by row, and a screenshot is taken.

Needs a ``chromium`` binary (Debian: ``apt-get install chromium``); skipped without one. Nothing
is downloaded: the page is a local file and is self-contained."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from ctrkit.bench.report import write_reports
from test_report_leaderboard import make_fake_bench, parse_page

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str | None:
    explicit = os.environ.get("CTRKIT_CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    return next((p for p in map(shutil.which, _NAMES) if p), None)


BROWSER = _browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium binary on PATH (Debian: apt-get install chromium; or set CTRKIT_CHROMIUM)"
)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(BROWSER),
        "--headless",
        # The page is our own local file; the sandbox needs user namespaces that containers and
        # root CI jobs often do not have.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    # The timeout only stops a hung browser from hanging the test run; nothing asserts on time.
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def _dom(tmp_path: Path, url: str) -> str:
    res = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", url)
    assert res.returncode == 0 and "<table" in res.stdout, res.stderr[-2000:]
    return res.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    bench = make_fake_bench(tmp_path_factory.mktemp("bench"))
    return write_reports(bench).html


def test_sort_script_orders_rows(page, tmp_path):
    url = page.resolve().as_uri()
    # no fragment: the server-side order (mean test AUC, best first), script untouched
    plain = parse_page(_dom(tmp_path, url))
    assert [r["data-model"] for r in plain.rows] == ["FinalMLP", "DCNv2", "DeepFM", "Wide&Deep <i>x</i>", "LR"]
    assert plain.sorted_by is None
    # by parameters, ascending: the script ran and reordered the DOM
    by_params = parse_page(_dom(tmp_path, url + "#sort=parameters"))
    assert by_params.sorted_by == "parameters:asc"
    assert [r["data-model"] for r in by_params.rows] == ["LR", "DeepFM", "Wide&Deep <i>x</i>", "DCNv2", "FinalMLP"]
    # a text column sorts by name; a missing value sorts last in either direction
    by_name = parse_page(_dom(tmp_path, url + "#sort=model:asc"))
    assert [r["data-model"] for r in by_name.rows] == ["DCNv2", "DeepFM", "FinalMLP", "LR", "Wide&Deep <i>x</i>"]
    by_latency = parse_page(_dom(tmp_path, url + "#sort=infer_single_ms:desc"))
    assert [r["data-model"] for r in by_latency.rows] == ["FinalMLP", "DCNv2", "DeepFM", "LR", "Wide&Deep <i>x</i>"]
    assert "i" not in by_latency.tags  # the escaped label stayed text in the live DOM


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_screenshot(page, tmp_path):
    shot = tmp_path / "leaderboard.png"
    res = _chromium(tmp_path, "--window-size=1400,1300", "--hide-scrollbars", f"--screenshot={shot}", page.resolve().as_uri() + "#sort=parameters")
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert _png_size(data) == (1400, 1300)
    assert len(data) > 20_000  # a blank page compresses to a few kB; ours has a table and three plots
    out = os.environ.get("CTRKIT_SCREENSHOT_DIR")
    if out:  # keep the picture for a person to look at (CI artifact)
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(out) / shot.name)

"""The HTTP server through FastAPI's TestClient: routes, metrics, reload under traffic, bad input."""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from ctrkit.serve import Predictor
from ctrkit.serve.app import create_app
from conftest import json_records


@pytest.fixture(scope="module")
def records(serve_data) -> list[dict]:
    df = pl.read_csv(serve_data / "test.tsv", separator="\t", infer_schema=False).head(20)
    return json_records(df.drop("click"))


@pytest.fixture(scope="module")
def client(deepfm_bundle):
    with TestClient(create_app(deepfm_bundle, max_batch=100, max_body_bytes=1 << 20)) as c:
        yield c


def test_predict_matches_the_predictor(client, records, deepfm_bundle):
    r = client.post("/predict", json={"records": records})
    assert r.status_code == 200, r.text
    got = np.array(r.json()["predictions"]["click"])
    ref = Predictor.load(deepfm_bundle, backend="eager").predict(records)["click"]
    assert r.json()["n"] == len(records)
    assert np.abs(got - ref).max() < 1e-5


def test_health_and_metadata(client, deepfm_bundle):
    h = client.get("/health").json()
    meta = json.loads((deepfm_bundle / "metadata.json").read_text())
    assert h["status"] == "ok" and h["model"] == "DeepFM" and h["bundle_hash"] == meta["bundle_hash"]
    m = client.get("/metadata").json()
    assert m["bundle_hash"] == meta["bundle_hash"] and m["metrics"] == meta["metrics"]
    assert m["serving"]["backend"] == meta["default_backend"]


_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.e+-]+$|^[a-zA-Z_:].* \+Inf$')


def test_metrics_text_format(client, records):
    client.post("/predict", json={"records": records[:2]})
    client.post("/predict", content=b"{not json")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) \w+ .+$", line), line
        else:
            assert _SAMPLE.match(line), line
    assert re.search(r'ctrkit_requests_total\{route="/predict",method="POST",status="200"\} [1-9]', text)
    assert re.search(r'ctrkit_requests_total\{route="/predict",method="POST",status="400"\} [1-9]', text)
    assert 'ctrkit_request_duration_seconds_bucket{route="/predict",le="+Inf"}' in text
    assert re.search(r'ctrkit_errors_total\{route="/predict",kind="bad_json"\} [1-9]', text)
    # Histogram buckets are cumulative and end at the count.
    buckets = [int(v) for v in re.findall(r'ctrkit_request_duration_seconds_bucket\{route="/predict",le="[^"]+"\} (\d+)', text)]
    count = int(re.search(r'ctrkit_request_duration_seconds_count\{route="/predict"\} (\d+)', text).group(1))
    assert buckets == sorted(buckets) and buckets[-1] == count


def _good(client, records, ref):
    r = client.post("/predict", json={"records": records[:3]})
    assert r.status_code == 200, r.text
    assert np.abs(np.array(r.json()["predictions"]["click"]) - ref).max() < 1e-5


@pytest.mark.parametrize(
    "body,status,field",
    [
        (b"{not json", 400, None),
        (b"", 400, None),
        (b"[1, 2]", 422, None),
        (b'{"records": 5}', 422, "records"),
        (b'{"records": [1]}', 422, "records[0]"),
        (b'{"records": [], "extra": 1}', 422, "extra"),
        (b'{"recs": []}', 422, "recs"),
        (b'{"records": [{"I1": "abc"}]}', 422, "records[0].I1"),
        (b'{"records": [{"I1": [1, 2]}]}', 422, "records[0].I1"),
        (b'{"records": [{"C1": {"a": 1}}]}', 422, "records[0].C1"),
        (b'{"records": [{"hist_items": 7}]}', 422, "records[0].hist_items"),
        (b'{"records": [{"C1": "a", "colour": "red"}]}', 422, "records[0].colour"),
        (b'{"records": [{"I1": NaN}]}', 400, None),
        (b'{"records": [{"I1": 1e999}]}', 422, "records[0].I1"),
        (b"\xff\xfe", 400, None),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_field(client, records, deepfm_bundle, body, status, field):
    ref = Predictor.load(deepfm_bundle, backend="eager").predict(records[:3])["click"]
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    if field is not None:
        assert r.json()["detail"]["field"] == field
    _good(client, records, ref)


def test_oversized_batches_and_bodies(client, records, deepfm_bundle):
    ref = Predictor.load(deepfm_bundle, backend="eager").predict(records[:3])["click"]
    r = client.post("/predict", json={"records": [records[0]] * 101})
    assert r.status_code == 413 and r.json()["detail"]["field"] == "records"
    r = client.post("/predict", content=b'{"records": [' + b'{"C1": "aaaaaaaa"},' * 100_000 + b"{}]}")
    assert r.status_code == 413
    _good(client, records, ref)


def test_missing_field_in_error_mode(deepfm_bundle, records):
    with TestClient(create_app(deepfm_bundle, missing="error")) as c:
        partial = {k: v for k, v in records[0].items() if k != "C2"}
        r = c.post("/predict", json={"records": [records[0], partial]})
        assert r.status_code == 422 and r.json()["detail"]["field"] == "records[1].C2"
    with TestClient(create_app(deepfm_bundle, unknown="ignore")) as c:
        assert c.post("/predict", json={"records": [{**records[0], "colour": "red"}]}).status_code == 200


def test_rank_runs_a_gsp_auction(client, records, deepfm_bundle):
    p = Predictor.load(deepfm_bundle, backend="eager")
    context = {k: records[0][k] for k in ("user_id", "hist_items", "hist_cats", "I1", "I2", "I3")}
    cands = [{"ad_id": f"ad{i}", "bid": b, **{k: records[i][k] for k in ("item_id", "item_cat", "C1", "C2", "C3", "C4", "C5")}}
             for i, b in enumerate([1.0, 2.5, 0.7, 1.8, 3.0])]
    r = client.post("/rank", json={"context": context, "candidates": cands, "slots": 3, "position_ctr": [1.0, 0.6, 0.3], "reserve": 0.1})
    assert r.status_code == 200, r.text
    slots = r.json()["slots"]
    pctr = p.predict([{**context, **{k: v for k, v in c.items() if k not in ("ad_id", "bid")}} for c in cands])["click"]
    score = np.array([c["bid"] for c in cands]) * pctr
    order = np.argsort(-score, kind="stable")
    assert [s["ad_id"] for s in slots] == [cands[i]["ad_id"] for i in order[:3]]
    for j, s in enumerate(slots):
        i, nxt = order[j], order[j + 1]
        assert s["pctr"] == pytest.approx(pctr[i], abs=1e-6)
        assert s["price_per_click"] == pytest.approx(max(score[nxt] / pctr[i], 0.1), rel=1e-5)
        assert s["price_per_click"] <= s["bid"] + 1e-9
        assert s["position_factor"] == [1.0, 0.6, 0.3][j]
    bad = client.post("/rank", json={"context": context, "candidates": [{"ad_id": "x"}], "slots": 1})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "candidates[0].bid"
    bad = client.post("/rank", json={"candidates": [{"ad_id": "x", "bid": "high"}], "slots": 1})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "candidates[0].bid"
    bad = client.post("/rank", json={"candidates": [], "slots": 2, "position_ctr": [1.0]})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "position_ctr"
    bad = client.post("/rank", json={"candidates": [{"ad_id": "x", "bid": 1, "I1": "zz"}], "slots": 1})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "candidates[0].I1"
    assert client.post("/rank", json={"candidates": [], "slots": 2}).json()["slots"] == []


def test_reload_mid_traffic_has_no_failures(deepfm_bundle, deepfm_run, records, tmp_path):
    from ctrkit.serve.export import export_run

    # A second bundle of the same run, with another hash (eager only: a different file set).
    other = export_run(deepfm_run, tmp_path / "other", onnx=False, torchscript=False, benchmark=False)
    hashes = {json.loads((b / "metadata.json").read_text())["bundle_hash"] for b in (deepfm_bundle, other)}
    assert len(hashes) == 2
    ref = Predictor.load(deepfm_bundle, backend="eager").predict(records)["click"]
    failures: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()
    with TestClient(create_app(deepfm_bundle)) as c:

        def traffic() -> None:
            while not stop.is_set():
                r = c.post("/predict", json={"records": records})
                if r.status_code != 200:
                    failures.append(r.text)
                    continue
                seen.add(r.json()["bundle_hash"])
                if np.abs(np.array(r.json()["predictions"]["click"]) - ref).max() > 1e-5:
                    failures.append("wrong scores")

        threads = [threading.Thread(target=traffic) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(6):
            r = c.post("/reload", json={"bundle": str(other if i % 2 == 0 else deepfm_bundle)})
            assert r.status_code == 200, r.text
        r = c.post("/reload", json={"bundle": str(tmp_path / "nope")})
        assert r.status_code == 400 and "still serving" in r.json()["detail"]["error"]
        r = c.post("/reload", json={"bundle": str(other)})
        assert r.status_code == 200
        stop.set()
        for t in threads:
            t.join()
        assert not failures, failures[:3]
        assert c.get("/health").json()["bundle_hash"] == json.loads((other / "metadata.json").read_text())["bundle_hash"]
        assert re.search(r"ctrkit_reloads_total 7", c.get("/metrics").text)
        assert "ctrkit_reload_failures_total 1" in c.get("/metrics").text
        assert c.post("/reload", content=b"{bad").status_code == 400
        assert c.post("/reload").status_code == 200  # same path again


def test_serve_command_and_sighup_reload(deepfm_run, tmp_path):
    """A real uvicorn server (``ctrkit serve``) on 127.0.0.1: SIGHUP reloads the bundle path."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from ctrkit.serve.export import export_run

    bundle = export_run(deepfm_run, tmp_path / "live", onnx=False, benchmark=False)
    h1 = json.loads((bundle / "metadata.json").read_text())["bundle_hash"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = "import sys; from ctrkit.commands.serve import serve_cmd; serve_cmd(sys.argv[1:])"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", code, str(bundle), "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode() if proc.poll() is not None else "timeout"
            time.sleep(0.2)
        assert httpx.get(f"{url}/health").json()["bundle_hash"] == h1
        # Replace the bundle at the same path (atomic rename), then SIGHUP.
        export_run(deepfm_run, bundle, onnx=False, torchscript=False, benchmark=False, overwrite=True)
        h2 = json.loads((bundle / "metadata.json").read_text())["bundle_hash"]
        assert h2 != h1
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 30
        while httpx.get(f"{url}/health").json()["bundle_hash"] != h2:
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.1)
        assert httpx.post(f"{url}/predict", content=b"{oops").status_code == 400
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_internal_error_answers_500_and_the_server_lives_on(deepfm_bundle, records):
    p = Predictor.load(deepfm_bundle, unknown="error")
    app = create_app(p)
    with TestClient(app, raise_server_exceptions=False) as c:
        def boom(recs):
            raise RuntimeError("a bug")

        p.predict = boom  # type: ignore[method-assign]
        for n in (1, 40):  # scored on the event loop, and in the thread pool
            r = c.post("/predict", json={"records": records[:1] * n})
            assert r.status_code == 500 and r.json()["detail"]["error"] == "internal error: RuntimeError"
        assert c.get("/health").status_code == 200
        text = c.get("/metrics").text
        assert 'ctrkit_errors_total{route="/predict",kind="internal"} 2' in text
        assert 'ctrkit_requests_total{route="/predict",method="POST",status="500"} 2' in text
        assert 'ctrkit_requests_total{route="/health",method="GET",status="200"} 1' in text

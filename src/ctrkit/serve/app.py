"""HTTP serving of a bundle with FastAPI: ``ctrkit serve BUNDLE --port N``.

Routes
------
``POST /predict``   ``{"records": [{field: value, ...}, ...]}`` -> ``{"predictions": {task: [p, ...]},
                    "n": n, "model": ..., "bundle_hash": ...}``
``POST /rank``      ``{"context": {...}, "candidates": [{"ad_id": ..., "bid": 1.2, ...}], "slots": k,
                    "position_ctr": [...], "reserve": r, "task": "click"}`` -> a GSP position auction
                    (:mod:`ctrkit.serve.auction`) over the candidates scored with ``context``
                    merged into each candidate (candidate fields win)
``GET /health``     liveness and the loaded model
``GET /metadata``   the bundle's metadata.json plus the serving backend and reload count
``GET /metrics``    Prometheus text format: requests by route and status, latency histogram,
                    errors by kind, rows scored, reloads, the loaded model
``POST /reload``    ``{"bundle": "path"}`` (optional; default: reload the current path) loads the
                    new bundle and swaps it in atomically; requests already running finish on
                    the old model. ``SIGHUP`` does the same for the current path.

Input validation (never a 500 for bad input; the error names the field):

* malformed JSON -> 400; a body that is not the documented object -> 422;
* wrong value type, or a missing field with ``missing="error"`` -> 422;
* unknown fields are **rejected** with 422 by default (``unknown="reject"``): a misspelt field
  would otherwise be scored silently as missing. Label and group columns of the training data are
  known, so raw training rows are accepted. ``unknown="ignore"`` drops them instead;
* more than ``max_batch`` records (or candidates) -> 413; a body over ``max_body_bytes`` -> 413.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from ctrkit.serve.auction import Candidate, gsp_auction
from ctrkit.serve.predictor import Backend, BundleError, InputError, Predictor

log = logging.getLogger("ctrkit.serve")

#: Latency histogram bucket upper bounds, seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROUTES = ("/predict", "/rank", "/health", "/metadata", "/metrics", "/reload")
#: Requests of at most this many records are scored on the event loop (see ``create_app.score``).
INLINE_MAX_RECORDS = 16


class RequestError(Exception):
    """A bad request: HTTP ``status``, the offending ``field`` (when known) and a message."""

    def __init__(self, status: int, message: str, *, field: str | None = None, kind: str = "validation", record: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.kind = kind
        self.record = record

    def body(self) -> dict[str, Any]:
        d: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            d["field"] = self.field
        if self.record is not None:
            d["record"] = self.record
        return {"detail": d}


# ---------------------------------------------------------------------- metrics
class Metrics:
    """Counters and a latency histogram, rendered in the Prometheus text exposition format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.hist: dict[str, list[int]] = {}
        self.hist_sum: dict[str, float] = {}
        self.hist_count: dict[str, int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.rows_scored = 0
        self.reloads = 0
        self.reload_failures = 0

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            k = (route, method, status)
            self.requests[k] = self.requests.get(k, 0) + 1
            h = self.hist.setdefault(route, [0] * len(LATENCY_BUCKETS))
            for i, ub in enumerate(LATENCY_BUCKETS):
                if seconds <= ub:
                    h[i] += 1
            self.hist_sum[route] = self.hist_sum.get(route, 0.0) + seconds
            self.hist_count[route] = self.hist_count.get(route, 0) + 1

    def error(self, route: str, kind: str) -> None:
        with self._lock:
            self.errors[(route, kind)] = self.errors.get((route, kind), 0) + 1

    def scored(self, n: int) -> None:
        with self._lock:
            self.rows_scored += n

    def render(self, info: dict[str, Any]) -> str:
        def esc(v: Any) -> str:
            return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

        lines: list[str] = []
        with self._lock:
            lines += ["# HELP ctrkit_requests_total HTTP requests by route, method and status.",
                      "# TYPE ctrkit_requests_total counter"]
            for (route, method, status), n in sorted(self.requests.items()):
                lines.append(f'ctrkit_requests_total{{route="{esc(route)}",method="{method}",status="{status}"}} {n}')
            lines += ["# HELP ctrkit_request_duration_seconds Request latency by route.",
                      "# TYPE ctrkit_request_duration_seconds histogram"]
            for route in sorted(self.hist):
                h = self.hist[route]
                for ub, n in zip(LATENCY_BUCKETS, h):
                    lines.append(f'ctrkit_request_duration_seconds_bucket{{route="{esc(route)}",le="{ub}"}} {n}')
                lines.append(f'ctrkit_request_duration_seconds_bucket{{route="{esc(route)}",le="+Inf"}} {self.hist_count[route]}')
                lines.append(f'ctrkit_request_duration_seconds_sum{{route="{esc(route)}"}} {self.hist_sum[route]:.9f}')
                lines.append(f'ctrkit_request_duration_seconds_count{{route="{esc(route)}"}} {self.hist_count[route]}')
            lines += ["# HELP ctrkit_errors_total Failed requests by route and kind.",
                      "# TYPE ctrkit_errors_total counter"]
            for (route, kind), n in sorted(self.errors.items()):
                lines.append(f'ctrkit_errors_total{{route="{esc(route)}",kind="{esc(kind)}"}} {n}')
            lines += ["# HELP ctrkit_rows_scored_total Records scored (predict and rank candidates).",
                      "# TYPE ctrkit_rows_scored_total counter", f"ctrkit_rows_scored_total {self.rows_scored}",
                      "# HELP ctrkit_reloads_total Successful model reloads.",
                      "# TYPE ctrkit_reloads_total counter", f"ctrkit_reloads_total {self.reloads}",
                      "# HELP ctrkit_reload_failures_total Failed model reloads (the old model kept serving).",
                      "# TYPE ctrkit_reload_failures_total counter", f"ctrkit_reload_failures_total {self.reload_failures}"]
        lines += ["# HELP ctrkit_model_info The loaded model (value is always 1).", "# TYPE ctrkit_model_info gauge",
                  'ctrkit_model_info{model="%s",backend="%s",bundle_hash="%s"} 1'
                  % (esc(info.get("model")), esc(info.get("backend")), esc(info.get("bundle_hash")))]
        return "\n".join(lines) + "\n"


class _Observe:
    """ASGI middleware: every HTTP request's route, status and latency into :class:`Metrics`; an
    unexpected exception answers 500 (the server lives on).

    A plain ASGI wrapper rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    runs the endpoint in a separate task and streams the response through a queue, which costs a
    large share of a sub-millisecond request."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in ROUTES else "other"
        t0 = time.perf_counter()
        status = 500
        started = False

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception as e:  # noqa: BLE001 - an unexpected bug answers 500, the server lives on
            log.exception("unhandled error on %s", path)
            self.metrics.error(route, "internal")
            if started:
                raise
            status = 500
            body = JSONResponse({"detail": {"error": f"internal error: {type(e).__name__}"}}, status_code=500)
            await body(scope, receive, send)
        finally:
            self.metrics.observe(route, scope.get("method", ""), status, time.perf_counter() - t0)


# ---------------------------------------------------------------------- model holder
class ModelHolder:
    """The serving :class:`Predictor`, swapped atomically on reload.

    A request takes a reference to the current predictor once (``holder.current``) and uses it to
    the end, so a reload never changes the model under a running request; the old predictor is
    freed when the last request holding it finishes. Reloads are serialised.
    """

    def __init__(self, predictor: Predictor, loader: Callable[[Path], Predictor], metrics: Metrics):
        self._predictor = predictor
        self._loader = loader
        self._swap_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self.metrics = metrics

    @property
    def current(self) -> Predictor:
        with self._swap_lock:
            return self._predictor

    def reload(self, bundle: str | Path | None = None) -> Predictor:
        """Load ``bundle`` (default: the current bundle's path again) and swap it in; on any
        error the current model keeps serving and the error propagates."""
        with self._reload_lock:
            path = Path(bundle) if bundle is not None else self.current.bundle
            try:
                new = self._loader(path)
            except Exception:
                with self.metrics._lock:
                    self.metrics.reload_failures += 1
                raise
            with self._swap_lock:
                self._predictor = new
            with self.metrics._lock:
                self.metrics.reloads += 1
            log.info("reloaded %s (%s)", path, new.info.get("bundle_hash"))
            return new


# ---------------------------------------------------------------------- request parsing
async def _json_body(request: Request, max_body_bytes: int) -> Any:
    cl = request.headers.get("content-length")
    if cl is not None:
        try:
            if int(cl) > max_body_bytes:
                raise RequestError(413, f"request body of {int(cl)} bytes exceeds the limit of {max_body_bytes}", kind="too_large")
        except ValueError:
            raise RequestError(400, "invalid Content-Length header", kind="bad_request") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            raise RequestError(413, f"request body exceeds the limit of {max_body_bytes} bytes", kind="too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise RequestError(400, "empty request body: expected a JSON object", kind="bad_json")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise RequestError(400, f"malformed JSON: {e}", kind="bad_json") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _object(body: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError(422, f"the body must be a JSON object, got {type(body).__name__}")
    for k in body:
        if k not in allowed:
            raise RequestError(422, f"unknown field (allowed: {sorted(allowed)})", field=k)
    for k in sorted(required):
        if k not in body:
            raise RequestError(422, "required field is missing", field=k)
    return body


def _records(body: dict[str, Any], key: str, max_batch: int) -> list[dict[str, Any]]:
    recs = body[key]
    if not isinstance(recs, list):
        raise RequestError(422, f"must be a list of objects, got {type(recs).__name__}", field=key)
    if len(recs) > max_batch:
        raise RequestError(413, f"{len(recs)} items exceed the maximum batch of {max_batch}", field=key, kind="too_large")
    for i, r in enumerate(recs):
        if not isinstance(r, dict):
            raise RequestError(422, f"must be an object, got {type(r).__name__}", field=f"{key}[{i}]")
    return recs


def _input_error(e: InputError, prefix: str = "records") -> RequestError:
    field = e.field
    if e.record is not None:
        field = f"{prefix}[{e.record}].{e.field}" if e.field else f"{prefix}[{e.record}]"
    return RequestError(422, e.reason, field=field, record=e.record)


# ---------------------------------------------------------------------- app
def create_app(
    bundle: str | Path | Predictor,
    *,
    backend: Backend = "auto",
    missing: Literal["fill", "error"] = "fill",
    unknown: Literal["reject", "ignore"] = "reject",
    max_batch: int = 10_000,
    max_body_bytes: int = 64 << 20,
    sighup: bool = False,
    threads: int | None = None,
) -> FastAPI:
    """The FastAPI app serving ``bundle`` (a path, or an already loaded :class:`Predictor` whose
    options are then used as they are). ``sighup`` installs a SIGHUP handler that reloads the
    current bundle path (for ``ctrkit serve``; leave off in tests and embedded use). ``threads``:
    ONNX Runtime intra-op threads (see :meth:`Predictor.load`)."""
    if unknown not in ("reject", "ignore"):
        raise ValueError(f"unknown must be 'reject' or 'ignore', got {unknown!r}")

    def loader(path: Path) -> Predictor:
        return Predictor.load(
            path, backend=backend, missing=missing, unknown="error" if unknown == "reject" else "ignore", threads=threads
        )

    first = bundle if isinstance(bundle, Predictor) else loader(Path(bundle))
    metrics = Metrics()
    holder = ModelHolder(first, loader, metrics)
    started = time.time()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        installed = False
        if sighup and hasattr(signal, "SIGHUP"):
            loop = asyncio.get_running_loop()

            def on_hup() -> None:
                def work() -> None:
                    try:
                        holder.reload()
                    except Exception as e:  # noqa: BLE001 - keep serving the old model
                        log.error("SIGHUP reload failed, still serving the old model: %s", e)

                loop.run_in_executor(None, work)

            try:
                loop.add_signal_handler(signal.SIGHUP, on_hup)
                installed = True
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
                log.warning("could not install the SIGHUP handler")
        yield
        if installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    app = FastAPI(title="ctrkit", version=str(first.metadata.get("ctrkit_version")), lifespan=lifespan)
    app.state.holder = holder
    app.state.metrics = metrics
    app.add_middleware(_Observe, metrics=metrics)

    async def score(pred: Predictor, recs: list[dict[str, Any]]) -> Any:
        # A few records score in well under a millisecond: a thread-pool hop would cost more
        # than it frees the event loop for (and the GIL serialises the encoding anyway). Larger
        # requests go to the pool so the loop keeps accepting while the model runs.
        if len(recs) <= INLINE_MAX_RECORDS:
            return pred.predict(recs)
        return await run_in_threadpool(pred.predict, recs)

    def fail(route: str, e: RequestError) -> JSONResponse:
        metrics.error(route, e.kind)
        return JSONResponse(e.body(), status_code=e.status)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        try:
            body = _object(await _json_body(request, max_body_bytes), {"records"}, {"records"})
            recs = _records(body, "records", max_batch)
            pred = holder.current
            try:
                probs = await score(pred, recs)
            except InputError as e:
                raise _input_error(e) from None
        except RequestError as e:
            return fail("/predict", e)
        metrics.scored(len(recs))
        out = {t: v.tolist() for t, v in probs.items()}  # type: ignore[union-attr]
        return JSONResponse({"predictions": out, "n": len(recs), "model": pred.info["model"], "bundle_hash": pred.info["bundle_hash"]})

    @app.post("/rank")
    async def rank(request: Request) -> Response:
        try:
            body = _object(
                await _json_body(request, max_body_bytes),
                {"context", "candidates", "slots", "position_ctr", "reserve", "task"},
                {"candidates", "slots"},
            )
            cands = _records(body, "candidates", max_batch)
            context = body.get("context") or {}
            if not isinstance(context, dict):
                raise RequestError(422, f"must be an object, got {type(context).__name__}", field="context")
            slots = body["slots"]
            if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
                raise RequestError(422, f"must be a non-negative integer, got {slots!r}", field="slots")
            pos = body.get("position_ctr")
            if pos is not None:
                if not isinstance(pos, list) or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0 for x in pos):
                    raise RequestError(422, "must be a list of non-negative numbers", field="position_ctr")
                if len(pos) < slots:
                    raise RequestError(422, f"has {len(pos)} factors for {slots} slots", field="position_ctr")
            reserve = body.get("reserve")
            if reserve is not None and (isinstance(reserve, bool) or not isinstance(reserve, (int, float)) or not math.isfinite(reserve) or reserve < 0):
                raise RequestError(422, "must be a non-negative number", field="reserve")
            pred = holder.current
            task = body.get("task") or pred.task_names[0]
            if task not in pred.task_names:
                raise RequestError(422, f"unknown task {task!r} (tasks: {pred.task_names})", field="task")
            inputs = set(pred.input_columns)
            records, bids, ids = [], [], []
            for i, c in enumerate(cands):
                for k in ("ad_id", "bid"):
                    if k not in c:
                        raise RequestError(422, "required field is missing", field=f"candidates[{i}].{k}")
                bid = c["bid"]
                if isinstance(bid, bool) or not isinstance(bid, (int, float)) or not math.isfinite(bid) or bid < 0:
                    raise RequestError(422, f"must be a non-negative number, got {bid!r}", field=f"candidates[{i}].bid")
                ad = c["ad_id"]
                if not isinstance(ad, (str, int)) or isinstance(ad, bool):
                    raise RequestError(422, f"must be a string or integer, got {type(ad).__name__}", field=f"candidates[{i}].ad_id")
                rec = dict(context)
                rec.update({k: v for k, v in c.items() if k not in ("ad_id", "bid") or k in inputs})
                records.append(rec)
                bids.append(float(bid))
                ids.append(ad)
            try:
                probs = await score(pred, records) if records else {task: []}
            except InputError as e:
                raise _input_error(e, "candidates") from None
            p = [float(x) for x in probs[task]]  # type: ignore[index]
            result = gsp_auction([Candidate(a, b, q) for a, b, q in zip(ids, bids, p)], slots, position_ctr=pos, reserve=reserve)
        except RequestError as e:
            return fail("/rank", e)
        except ValueError as e:  # auction input checks
            return fail("/rank", RequestError(422, str(e)))
        metrics.scored(len(records))
        return JSONResponse({
            "slots": [r.to_dict() for r in result],
            "candidates": len(records),
            "task": task,
            "model": pred.info["model"],
            "bundle_hash": pred.info["bundle_hash"],
        })

    @app.get("/health")
    async def health() -> Response:
        info = holder.current.info
        return JSONResponse({"status": "ok", "model": info["model"], "bundle_hash": info["bundle_hash"],
                             "backend": info["backend"], "uptime_seconds": time.time() - started})

    @app.get("/metadata")
    async def metadata() -> Response:
        pred = holder.current
        return JSONResponse({**pred.metadata, "serving": {**pred.info, "reloads": metrics.reloads,
                                                          "missing": pred.missing, "unknown": unknown, "max_batch": max_batch}})

    @app.get("/metrics")
    async def prom() -> Response:
        return PlainTextResponse(metrics.render(holder.current.info), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/reload")
    async def reload(request: Request) -> Response:
        try:
            raw = await request.body()
            body: Any = {}
            if raw.strip():
                try:
                    body = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise RequestError(400, f"malformed JSON: {e}", kind="bad_json") from None
            body = _object(body, {"bundle"}, set())
            path = body.get("bundle")
            if path is not None and not isinstance(path, str):
                raise RequestError(422, "must be a path string", field="bundle")
            try:
                new = await run_in_threadpool(holder.reload, path)
            except (BundleError, FileNotFoundError, ValueError) as e:
                raise RequestError(400, f"reload failed, still serving the old model: {e}", field="bundle", kind="reload") from None
        except RequestError as e:
            return fail("/reload", e)
        return JSONResponse({"status": "reloaded", **new.info})

    return app


def serve(
    bundle: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "auto",
    missing: str = "fill",
    unknown: str = "reject",
    max_batch: int = 10_000,
    threads: int | None = None,
    log_level: str = "info",
) -> None:
    """Run the server with uvicorn (SIGHUP reloads the bundle path)."""
    import uvicorn

    app = create_app(bundle, backend=backend, missing=missing, unknown=unknown, max_batch=max_batch, sighup=True, threads=threads)  # type: ignore[arg-type]
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


__all__ = ["Metrics", "ModelHolder", "RequestError", "create_app", "serve"]

"""The dashboard's web application: a JSON API, a live event stream and a static page.

Theory of operation
-------------------
:func:`create_app` builds a FastAPI app over one run store.  The store is the only source
of truth: the app never talks to a running driver.  A run being recorded by another
process (or thread) is seen growing because its recorder commits the log in batches and
every request reads the store afresh.

``GET /``                          the page (``static/index.html``; script and style
                                   next to it under ``/static``)
``GET /api/runs``                  the store's runs, newest first
``GET /api/runs/{id}``             the run's view (:func:`~paragents.dashboard.data.run_view`):
                                   graph, states, critical path, report, adaptations
``GET /api/runs/{id}/events``      the log after ``?after=SEQ`` (default: all of it)
``GET /api/runs/{id}/stream``      server-sent events: every ``POLL_S`` the store is read
                                   and the events after the last one sent go out as one
                                   ``events`` message ``{"events": [...], "status": ...}``;
                                   ``?after=SEQ`` resumes.  Once the run has finished and
                                   everything was sent, one ``end`` message closes it.
``GET /metrics``                   Prometheus metrics of the store's recent runs
                                   (:class:`~paragents.telemetry.metrics.StoreMetrics`)

Access.  With a ``token``, every request must carry it — header ``Authorization: Bearer
T``, header ``X-Paragents-Token: T`` or query ``?token=T`` (the page passes it on to its
API calls and its event stream, which cannot set headers) — or it is answered 401.  The
comparison is constant-time.  Whether a token is needed at all is the server's business
(:mod:`paragents.dashboard.server`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from ..store import FINISHED_STATUSES, RunStore, StoredRun, StoreError, open_store
from ..telemetry.metrics import CONTENT_TYPE, StoreMetrics
from .data import event_dicts, run_view

__all__ = ["POLL_S", "STATIC", "create_app"]

#: How often the event stream reads the store for new events, in seconds.
POLL_S = 0.2
#: The page's files, shipped as package data.
STATIC = resources.files("paragents").joinpath("dashboard/static")


def _token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-paragents-token") or request.query_params.get("token")


def create_app(store_url: str | None, token: str | None = None) -> FastAPI:
    """The dashboard app over the store at ``store_url`` (a path or URL; None: the default
    store); with ``token``, every request must present it."""
    store = open_store(store_url)
    metrics = StoreMetrics(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="paragents dashboard", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store = store

    if token:

        @app.middleware("http")
        async def require_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            given = _token_of(request)
            if given is None or not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "a valid token is required"}, status_code=401)
            return await call_next(request)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(STATIC.joinpath("index.html")), media_type="text/html")

    @app.get("/api/runs")
    def list_runs(limit: int = 50) -> dict[str, Any]:
        return {"store": store.url, "runs": [asdict(r) for r in store.list_runs(limit)]}

    @app.get("/api/runs/{run_id}")
    def get_run(run_id: str) -> dict[str, Any]:
        return run_view(_load(store, run_id))

    @app.get("/api/runs/{run_id}/events")
    def get_events(run_id: str, after: int = -1) -> dict[str, Any]:
        stored = _load(store, run_id)
        return _batch(stored, after)

    @app.get("/api/runs/{run_id}/stream")
    async def stream(run_id: str, after: int = -1) -> StreamingResponse:
        _load(store, run_id)  # an unknown run is a 404 now, not an empty stream
        return StreamingResponse(_stream(store, run_id, after), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/metrics", include_in_schema=False)
    def get_metrics() -> Response:
        return Response(metrics.scrape(), media_type=CONTENT_TYPE)

    return app


def _load(store: RunStore, run_id: str) -> StoredRun:
    try:
        return store.load_run(run_id)
    except StoreError as exc:
        if str(exc).startswith(f"no run {run_id!r}"):
            raise HTTPException(status_code=404, detail=str(exc)) from None
        raise HTTPException(status_code=503, detail=str(exc)) from None


def _batch(stored: StoredRun, after: int) -> dict[str, Any]:
    t0 = stored.events[0].time if stored.events else 0.0
    events = event_dicts(stored.events, stored.seqs, t0, after)
    return {"events": events, "seq": stored.seqs[-1] if stored.seqs else after, "status": stored.status}


async def _stream(store: RunStore, run_id: str, after: int) -> AsyncIterator[str]:
    """Server-sent events: new log events every :data:`POLL_S` until the run has ended."""
    yield "retry: 1000\n\n"
    while True:
        stored = await asyncio.to_thread(store.load_run, run_id)
        batch = _batch(stored, after)
        if batch["events"]:
            after = batch["seq"]
            yield f"event: events\nid: {after}\ndata: {json.dumps(batch, default=str)}\n\n"
        if stored.status in FINISHED_STATUSES:
            yield f"event: end\ndata: {json.dumps({'status': stored.status})}\n\n"
            return
        await asyncio.sleep(POLL_S)

"""The console's FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from hypercare import __version__
from hypercare.api import docs, errors, openapi
from hypercare.api.errors import error_body
from hypercare.api.limits import BodyLimit, InputGuard
from hypercare.api.state import AppState
from hypercare.auth.views import router as tokens_router
from hypercare.detection.jobs import run_detection
from hypercare.detection.jobs import runtime as detection_runtime
from hypercare.detection.views import router as detection_router
from hypercare.feedback import views as feedback_views
from hypercare.response import jobs as response_jobs
from hypercare.response import views as response_views
from hypercare.runtime import settle_gc
from hypercare.store.db import ping
from hypercare.telemetry import jobs as telemetry_jobs
from hypercare.telemetry import otlp_views
from hypercare.telemetry.shipper import INGEST_PATH
from hypercare.telemetry.views import router as telemetry_router
from hypercare.triage.jobs import run_sla_clock
from hypercare.triage.views import router as issues_router
from hypercare.web.app import install as install_console

MAX_BODY_BYTES = 1024 * 1024


def create_app(state: AppState, *, background: bool = True) -> FastAPI:
    """The console app over `state`. `background=False` leaves the timers off (tests)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = []
        if background:
            tasks.append(asyncio.create_task(run_sla_clock(state, stop), name="sla-clock"))
            await telemetry_jobs.start(state)
            tasks.append(asyncio.create_task(telemetry_jobs.run_flush(state, stop)))
            tasks.append(asyncio.create_task(telemetry_jobs.run_compaction(state, stop)))
            tasks.append(asyncio.create_task(telemetry_jobs.prewarm(state, time.time())))
            if state.config.detection.enabled:
                tasks.append(asyncio.create_task(run_detection(state, stop), name="detection"))
            await response_jobs.start(state)
            tasks.append(
                asyncio.create_task(response_jobs.run_response(state, stop), name="response")
            )
            settle_gc()
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if background:
                await telemetry_jobs.shutdown(state)

    app = FastAPI(
        title="Hypercare",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served by hypercare.api.docs from vendored files
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.hypercare = state
    # after each stored batch: the intake waits on it for the calls a report cites
    telemetry_jobs.collector_of(state).observers.append(state.call_clock.observe)
    if state.config.detection.enabled:
        telemetry_jobs.collector_of(state).observers.append(detection_runtime(state).live.observe)
    # path templates of calls under the external catch-all: the console's route suggestions
    telemetry_jobs.collector_of(state).observers.append(otlp_views.intake_of(state).observe)
    errors.install(app)
    openapi.install(app)
    # inside BodyLimit, which bounds what it reads
    app.add_middleware(InputGuard, raw_bodies=(INGEST_PATH, *otlp_views.PATHS))
    otlp_max = state.config.telemetry.otlp.max_body_mb << 20
    app.add_middleware(
        BodyLimit,
        max_bytes=MAX_BODY_BYTES,
        per_path=dict.fromkeys(otlp_views.PATHS, otlp_max),
    )
    app.include_router(docs.router)
    app.include_router(issues_router)
    app.include_router(tokens_router)
    app.include_router(feedback_views.router)
    app.include_router(feedback_views.public)
    app.include_router(telemetry_router)
    app.include_router(otlp_views.router)
    app.include_router(detection_router)
    app.include_router(response_views.router)
    app.include_router(response_views.links)
    install_console(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"], response_model=None)
    async def readyz() -> dict[str, str] | JSONResponse:
        try:
            await asyncio.wait_for(ping(state.engine), timeout=5)
        except Exception as exc:
            return JSONResponse(
                error_body(
                    "store_unavailable", f"the store is not reachable: {type(exc).__name__}"
                ),
                status_code=503,
            )
        return {"status": "ready", "store": state.engine.dialect.name}

    return app

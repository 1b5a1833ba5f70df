"""The composition root: the console's state, FastAPI application factory and lifespan.

Only this module (and `hypercare.server`, which runs it) picks the concrete parts and wires
the domains together; the HTTP helpers the domains import live apart from it
(`api.deps`, `api.errors`, `api.limits`, `api.state`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare import __version__
from hypercare.api import docs, errors, openapi
from hypercare.api.errors import error_body
from hypercare.api.limits import BodyLimit, InputGuard
from hypercare.api.state import AppState
from hypercare.auth.views import router as tokens_router
from hypercare.comms import jobs as comms_jobs
from hypercare.comms import subscribe as subscribe_views
from hypercare.comms import views as comms_views
from hypercare.config import HypercareConfig
from hypercare.detection import service as detection_service
from hypercare.detection.attach import Correlator
from hypercare.detection.jobs import run_detection, warm_correlation
from hypercare.detection.jobs import runtime as detection_runtime
from hypercare.detection.models import IssueAnalysis
from hypercare.detection.views import router as detection_router
from hypercare.feedback import service as feedback_service
from hypercare.feedback import views as feedback_views
from hypercare.launch.jobs import run_launches
from hypercare.launch.views import router as launch_router
from hypercare.response import jobs as response_jobs
from hypercare.response import views as response_views
from hypercare.review import jobs as review_jobs
from hypercare.review import views as review_views
from hypercare.runtime import settle_gc
from hypercare.status import jobs as status_jobs
from hypercare.status import views as status_views
from hypercare.store.checkpoint import checkpoints
from hypercare.store.db import ping, session_factory
from hypercare.telemetry import jobs as telemetry_jobs
from hypercare.telemetry import otlp_views
from hypercare.telemetry.shipper import INGEST_PATH
from hypercare.telemetry.views import router as telemetry_router
from hypercare.triage.detail import IssueDetailParts
from hypercare.triage.jobs import run_sla_clock
from hypercare.triage.rules import Matrix
from hypercare.triage.views import detail_router
from hypercare.triage.views import router as issues_router
from hypercare.web.app import install as install_console

MAX_BODY_BYTES = 1024 * 1024

# GET /api/v1/issues/{id}: the issue with feedback's linked signals and detection's analysis
ISSUE_DETAIL = IssueDetailParts(
    model=IssueAnalysis,
    sections=(feedback_service.issue_section, detection_service.issue_section),
)


def build_state(config: HypercareConfig, engine: AsyncEngine) -> AppState:
    """The console's state over `engine`, with correlation as the intake's attach step."""
    return AppState(
        config=config,
        engine=engine,
        sessions=session_factory(engine),
        matrix=Matrix(config.triage),
        attach=Correlator(config),
    )


def create_app(state: AppState, *, background: bool = True) -> FastAPI:
    """The console app over `state`. `background=False` leaves the timers off (tests)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = []
        if background:
            tasks.append(asyncio.create_task(run_sla_clock(state, stop), name="sla-clock"))
            tasks.append(
                asyncio.create_task(checkpoints(state.engine, stop), name="wal-checkpoints")
            )
            await telemetry_jobs.start(state)
            tasks.append(asyncio.create_task(telemetry_jobs.run_flush(state, stop)))
            tasks.append(asyncio.create_task(telemetry_jobs.run_compaction(state, stop)))
            tasks.append(asyncio.create_task(telemetry_jobs.prewarm(state, time.time())))
            tasks.append(asyncio.create_task(warm_correlation(state), name="correlation-warm"))
            if state.config.detection.enabled:
                tasks.append(asyncio.create_task(run_detection(state, stop), name="detection"))
            # always: launches can be made through the API while the server runs
            tasks.append(asyncio.create_task(run_launches(state, stop), name="launches"))
            await response_jobs.start(state)
            tasks.append(
                asyncio.create_task(response_jobs.run_response(state, stop), name="response")
            )
            if state.config.comms.subscribers.enabled:
                tasks.append(
                    asyncio.create_task(comms_jobs.run_subscribers(state, stop), name="subscribers")
                )
            if state.config.comms.digest.send_at or state.config.comms.digest.at_shift_change:
                tasks.append(asyncio.create_task(comms_jobs.run_digest(state, stop), name="digest"))
            if state.config.review.enabled:
                await review_jobs.start(state)
                tasks.append(
                    asyncio.create_task(review_jobs.run_reviews(state, stop), name="reviews")
                )
            if state.config.status.enabled:
                tasks.append(
                    asyncio.create_task(status_jobs.run_status(state, stop), name="status")
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
    if state.config.status.enabled:
        status_jobs.install(state)
    # "fixed" messages to reporters, made by the response outbox
    comms_jobs.install(state)
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
    app.include_router(detail_router(ISSUE_DETAIL))
    app.include_router(tokens_router)
    app.include_router(feedback_views.router)
    app.include_router(feedback_views.public)
    app.include_router(telemetry_router)
    app.include_router(otlp_views.router)
    app.include_router(detection_router)
    app.include_router(response_views.router)
    app.include_router(comms_views.router)
    app.include_router(subscribe_views.router)
    app.include_router(subscribe_views.public)
    app.include_router(launch_router)
    app.include_router(response_views.links)
    app.include_router(review_views.router)
    app.include_router(status_views.router)
    install_console(app)
    if state.config.status.enabled:
        # outermost: the public status documents are answered before any other layer
        app.add_middleware(status_views.PublicStatus, state=state)

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

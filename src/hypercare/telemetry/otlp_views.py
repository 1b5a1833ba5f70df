"""HTTP for the OTLP/HTTP receiver (``POST /v1/traces``, ``POST /v1/logs``) and the
external intake's state (``GET /api/v1/telemetry/intake``).

Exports are authenticated by node tokens (the ingest-only credential `hypercare telemetry
node-token` prints), decoded by `otlp.py` and stored through `Collector.ingest`, the same
path the gateway's shipped batches take. Answers follow the OTLP/HTTP spec so collectors
retry correctly: 200 with ``partial_success`` when some spans were refused, 400 for a body
that is not an export request, 413 over the size limit, 415 for an unknown encoding, 429
(too many exports at once) and 503 (store unavailable) with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.exc import DBAPIError, OperationalError

from hypercare.api.deps import Db, State, Viewer, bearer_token
from hypercare.api.state import AppState
from hypercare.gateway.records import CallRecord
from hypercare.telemetry import nodes, otlp
from hypercare.telemetry.external import (
    CATCH_ALL,
    ExternalRoutes,
    TemplateCounter,
    suggested_config,
)
from hypercare.telemetry.jobs import collector_of
from hypercare.telemetry.metrics import _label
from hypercare.telemetry.models import IntakeRead, IntakeSourceRead, RouteSuggestion
from hypercare.telemetry.wire import MAX_RECORDS, Batch

log = logging.getLogger("hypercare.telemetry")

TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
PATHS = (TRACES_PATH, LOGS_PATH)
EXTRA = "telemetry.otlp"
RETRY_AFTER = "2"
# bodies up to this size (as sent) are decoded on the event loop (a thread costs more)
INLINE_BYTES = 64 << 10

router = APIRouter(tags=["telemetry"])

_BOTH: dict[str, Any] = {"application/x-protobuf": {}, "application/json": {}}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Stored; partial_success when some items were refused", "content": _BOTH},
    400: {"description": "Not an OTLP export request (google.rpc.Status)", "content": _BOTH},
    401: {"description": "Missing, invalid or revoked node token", "content": _BOTH},
    403: {"description": "An API token, not a node token", "content": _BOTH},
    413: {"description": "Body over the size limit (google.rpc.Status)", "content": _BOTH},
    415: {"description": "Unsupported Content-Type or Content-Encoding", "content": _BOTH},
    429: {"description": "Too many exports at once; retry after Retry-After", "content": _BOTH},
    503: {"description": "Store unavailable; retry after Retry-After", "content": _BOTH},
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


@dataclass
class Intake:
    """The receiver's long-lived state, kept in `AppState.extras`."""

    routes: ExternalRoutes
    consumer_attribute: str
    slots: asyncio.Semaphore
    max_body: int
    templates: TemplateCounter = field(default_factory=TemplateCounter)
    sources: dict[str, otlp.SourceStats] = field(default_factory=dict)
    overloaded: int = 0

    def source(self, name: str) -> otlp.SourceStats:
        found = self.sources.get(name)
        if found is None:
            found = self.sources[name] = otlp.SourceStats()
        return found

    def observe(self, records: Sequence[CallRecord]) -> None:
        """Count the path templates of calls under the catch-all (a collector observer:
        sees every stored call, whichever source sent it)."""
        add = self.templates.add
        for r in records:
            if r.route == CATCH_ALL:
                add(r.method, r.path_template)


def intake_of(state: AppState) -> Intake:
    found: Intake | None = state.extras.get(EXTRA)
    if found is None:
        cfg = state.config.telemetry.otlp
        found = Intake(
            routes=ExternalRoutes.from_config(state.config.external_routes),
            consumer_attribute=cfg.consumer_attribute,
            slots=asyncio.Semaphore(cfg.max_concurrent),
            max_body=cfg.max_body_mb << 20,
        )
        state.extras[EXTRA] = found
    return found


def _answer(kind: str, status: int, message: str, code: str, retry: bool = False) -> Response:
    grpc = {400: 3, 413: 8, 415: 3, 429: 8, 503: 14}.get(status, 2)
    body, media = otlp.status_body(kind, grpc, message, code)
    headers = {"Retry-After": RETRY_AFTER} if retry else None
    return Response(body, status_code=status, media_type=media, headers=headers)


async def _export(request: Request, state: AppState, session: Db, signal: str) -> Response:
    collector = collector_of(state)
    intake = intake_of(state)
    node = await nodes.authenticate_node(
        session=session, token=bearer_token(request), verified=collector.nodes
    )
    stats = intake.source(f"otlp/{signal}")
    stats.requests += 1
    content_type = request.headers.get("content-type", "")
    try:
        kind = otlp.media_type(content_type)
    except otlp.Unsupported as exc:
        stats.bad(str(exc), f"Content-Type: {content_type[:100]}", time.time())
        return _answer(otlp.JSON, 415, str(exc), "unsupported_media_type")
    if intake.slots.locked():
        intake.overloaded += 1
        return _answer(kind, 429, "too many exports at once; retry later", "overloaded", True)
    async with intake.slots:
        raw = await request.body()
        work = functools.partial(
            otlp.convert,
            signal,
            raw,
            encoding=request.headers.get("content-encoding", ""),
            kind=kind,
            routes=intake.routes,
            consumer_key=intake.consumer_attribute,
            max_body=intake.max_body,
        )
        try:
            # a big export takes a while to decode: off the loop, so other requests go on
            export = await asyncio.to_thread(work) if len(raw) > INLINE_BYTES else work()
        except otlp.TooLarge as exc:
            stats.bad(str(exc), f"{len(raw)} bytes", time.time())
            return _answer(kind, 413, str(exc), "payload_too_large")
        except otlp.Unsupported as exc:
            stats.bad(str(exc), otlp.sample_of(raw), time.time())
            return _answer(kind, 415, str(exc), "unsupported_media_type")
        except otlp.Malformed as exc:
            stats.bad(str(exc), otlp.sample_of(raw), time.time())
            return _answer(kind, 400, str(exc), "invalid_input")
        records = export.records
        try:
            for n, at in enumerate(range(0, len(records), MAX_RECORDS)):
                chunk = records[at : at + MAX_RECORDS]
                batch = Batch(f"{export.key}-{n}", time.time(), 0, 0, chunk, {})
                await collector.ingest(node, batch)
        except (OperationalError, DBAPIError, OSError, TimeoutError) as exc:
            log.warning("otlp: could not store an export (%s); asked to retry", type(exc).__name__)
            return _answer(kind, 503, "the store is unavailable; retry later", "unavailable", True)
    rejected, why = export.rejected, export.sample
    stats.items += export.items
    stats.calls += len(records)
    stats.rejected += rejected
    stats.missing_service += export.missing_service
    if rejected:
        stats.last_error = why
        stats.last_error_at = time.time()
    what = "spans" if signal == "traces" else "log records"
    message = f"{rejected} {what} refused: {why}" if rejected else ""
    return Response(
        otlp.encode_response(signal, kind, rejected, message),
        media_type=kind,
    )


@router.post(
    TRACES_PATH,
    response_class=Response,
    summary="OTLP/HTTP trace export",
    responses=_ANSWERS,
    openapi_extra=_BODY,
)
async def export_traces(request: Request, state: State, session: Db) -> Response:
    """OTLP/HTTP traces (protobuf or JSON, optionally gzip); node token as Bearer."""
    return await _export(request, state, session, "traces")


@router.post(
    LOGS_PATH,
    response_class=Response,
    summary="OTLP/HTTP logs export",
    responses=_ANSWERS,
    openapi_extra=_BODY,
)
async def export_logs(request: Request, state: State, session: Db) -> Response:
    """OTLP/HTTP logs (protobuf or JSON, optionally gzip); node token as Bearer."""
    return await _export(request, state, session, "logs")


def _at(ts: float) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


@router.get("/api/v1/telemetry/intake", response_model=IntakeRead)
async def intake(
    state: State, _: Viewer, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> IntakeRead:
    """External sources' counts (malformed input with a sample) and the routes suggested
    from the most frequent path templates under the catch-all."""
    it = intake_of(state)
    return IntakeRead(
        catch_all=CATCH_ALL,
        external_routes=list(it.routes.names),
        sources=[
            IntakeSourceRead(
                source=name,
                requests=s.requests,
                items=s.items,
                calls=s.calls,
                rejected=s.rejected,
                malformed=s.malformed,
                missing_service=s.missing_service,
                last_error=s.last_error,
                last_sample=s.last_sample,
                last_error_at=_at(s.last_error_at),
            )
            for name, s in sorted(it.sources.items())
        ],
        suggestions=[
            RouteSuggestion(
                method=g.method,
                path_template=g.path_template,
                calls=g.calls,
                config=suggested_config(g),
            )
            for g in it.templates.suggestions(limit)
        ],
    )


def render_metrics(state: AppState) -> str:
    """The receiver's lines for the console's /metrics."""
    it = intake_of(state)
    lines: list[str] = []
    for name, help_, attr in (
        ("hypercare_intake_requests_total", "Export requests received.", "requests"),
        ("hypercare_intake_items_total", "Spans or log records received.", "items"),
        ("hypercare_intake_calls_total", "Spans or log records stored as calls.", "calls"),
        ("hypercare_intake_rejected_total", "Spans or log records refused.", "rejected"),
        ("hypercare_intake_malformed_total", "Requests refused whole (400/413/415).", "malformed"),
        (
            "hypercare_intake_missing_service_total",
            "Resources sent without service.name.",
            "missing_service",
        ),
    ):
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} counter")
        for source, s in sorted(it.sources.items()):
            lines.append(f'{name}{{source="{_label(source)}"}} {getattr(s, attr)}')
    lines.append(
        "# HELP hypercare_intake_overloaded_total Exports answered 429 (too many at once)."
    )
    lines.append("# TYPE hypercare_intake_overloaded_total counter")
    lines.append(f"hypercare_intake_overloaded_total {it.overloaded}")
    return "\n".join(lines) + "\n"

"""HTTP for telemetry: node ingest, analytics, call detail and the console's /metrics."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse

from hypercare.api.deps import Db, State, Viewer, bearer_token
from hypercare.bounds import Instant
from hypercare.configtypes import parse_duration
from hypercare.errors import InvalidInput
from hypercare.telemetry import calls, nodes, query
from hypercare.telemetry.accesslog import FORMATS, Rejects, parse_body
from hypercare.telemetry.jobs import collector_of, live_of
from hypercare.telemetry.metrics import render
from hypercare.telemetry.models import (
    CallRead,
    CallsPage,
    IngestResult,
    LogIngestResult,
    Point,
    RoutesRead,
    TimeseriesRead,
    TrendMetric,
    TrendsRead,
    UnparsedRead,
    UnparsedSource,
)
from hypercare.telemetry.otlp_views import intake_of, render_metrics
from hypercare.telemetry.wire import MAX_RECORDS, Batch, decode_batch

router = APIRouter(tags=["telemetry"])  # /metrics sits at the root, the rest under /api/v1
api = APIRouter(prefix="/api/v1", tags=["telemetry"])

From = Annotated[
    Instant | None, Query(alias="from", description="ISO 8601 or Unix seconds; default to-1h")
]
To = Annotated[Instant | None, Query(alias="to", description="ISO 8601 or Unix seconds; now")]
MAX_RANGE = timedelta(days=400)


def _range(start: datetime | None, end: datetime | None) -> tuple[float, float]:
    end_ = end or datetime.now(UTC)
    start_ = start or end_ - timedelta(hours=1)
    if end_ <= start_:
        raise InvalidInput("'to' must be after 'from'")
    if end_ - start_ > MAX_RANGE:
        raise InvalidInput("the range is too long: at most 400 days")
    return start_.timestamp(), end_.timestamp()


def _seconds(value: str, name: str) -> int:
    try:
        return int(parse_duration(value).total_seconds())
    except ValueError as exc:
        raise InvalidInput(f"{name}: {exc}") from None


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@api.post("/internal/telemetry", response_model=IngestResult, include_in_schema=True)
async def ingest(request: Request, state: State, session: Db) -> IngestResult:
    """Accept one batch from a gateway node (node token only; see docs/api.md)."""
    collector = collector_of(state)
    node = await nodes.authenticate_node(
        session=session, token=bearer_token(request), verified=collector.nodes
    )
    batch = decode_batch(await request.body())
    accepted, duplicate = await collector.ingest(node, batch)
    return IngestResult(batch=batch.key, accepted=accepted, duplicate=duplicate)


_FORMAT_NAMES = ", ".join(FORMATS)


@api.post("/ingest/{fmt}", response_model=LogIngestResult)
async def ingest_log(
    request: Request,
    state: State,
    session: Db,
    fmt: Annotated[str, Path(max_length=40, description=_FORMAT_NAMES)],
) -> LogIngestResult:
    """Access-log entries pushed by a gateway's logger (Kong http-log, APISIX http-logger;
    any format in the registry): one JSON object, a JSON array of them, or NDJSON. Node
    token. Entries become call records through the same ingest as a gateway node's batches;
    entries that do not match the format are counted per source with a sample."""
    adapter = FORMATS.get(fmt)
    if adapter is None:
        raise InvalidInput(f"unknown access-log format {fmt!r}: use one of {_FORMAT_NAMES}")
    collector = collector_of(state)
    node = await nodes.authenticate_node(
        session=session, token=bearer_token(request), verified=collector.nodes
    )
    body = await request.body()
    source = f"{fmt} {node}"
    rejects = Rejects()
    intake = intake_of(state)  # the OTLP receiver's: its route matcher and per-source counts
    records = parse_body(body, adapter, intake.routes.match, rejects, source)
    collector.live.stats.unparsed.merge(rejects)
    rejected = rejects.total
    reason = next(iter(rejects.sources.values())).reason if rejected else None
    counts = intake.source(fmt)
    counts.requests += 1
    counts.items += len(records) + rejected
    counts.calls += len(records)
    counts.rejected += rejected
    if rejected:
        r = rejects.sources[source]
        counts.last_error, counts.last_sample, counts.last_error_at = r.reason, r.sample, r.at
    if not records and rejected:
        raise InvalidInput(
            f"no entry of this body is a {adapter.title} log entry ({reason}); "
            f"{rejected} counted as unparsed for {source}",
            details={"rejected": rejected},
        )
    if len(records) > MAX_RECORDS:
        raise InvalidInput(f"at most {MAX_RECORDS} entries per request (got {len(records)})")
    # the same body pushed again (a logger retrying after a lost answer) is stored once
    key = (
        "log-"
        + hashlib.sha256(fmt.encode() + b"\0" + node.encode() + b"\0" + body).hexdigest()[:40]
    )
    batch = Batch(key, time.time(), 0, 0, records, {})
    accepted, duplicate = await collector.ingest(node, batch)
    return LogIngestResult(
        batch=key, accepted=accepted, rejected=rejected, reason=reason, duplicate=duplicate
    )


@api.get("/telemetry/unparsed", response_model=UnparsedRead)
async def unparsed_sources(state: State, _: Viewer) -> UnparsedRead:
    """Access-log lines that did not match their format, per source, with the last one."""
    sources = live_of(state).stats.unparsed.sources
    return UnparsedRead(
        sources=[
            UnparsedSource(
                source=name,
                total=r.total,
                sample=r.sample,
                reason=r.reason,
                last_at=_at(r.at) if r.at else None,
            )
            for name, r in sorted(sources.items())
        ]
    )


async def _summary(
    session: Db, state: State, dim: str, start: datetime | None, end: datetime | None
) -> RoutesRead:
    s, e = _range(start, end)
    rows = await query.summary(session, live_of(state), dim=dim, start=s, end=e)
    a, b = query.align(s, e)
    return RoutesRead(dim=dim, start=_at(a), end=_at(b), rows=rows)


@api.get("/analytics/routes", response_model=RoutesRead)
async def routes(
    session: Db, state: State, _: Viewer, start: From = None, end: To = None
) -> RoutesRead:
    return await _summary(session, state, "route", start, end)


@api.get("/analytics/consumers", response_model=RoutesRead)
async def consumers(
    session: Db, state: State, _: Viewer, start: From = None, end: To = None
) -> RoutesRead:
    return await _summary(session, state, "consumer", start, end)


@api.get("/analytics/targets", response_model=RoutesRead)
async def targets(
    session: Db, state: State, _: Viewer, start: From = None, end: To = None
) -> RoutesRead:
    return await _summary(session, state, "target", start, end)


def _dim_key(route: str | None, consumer: str | None, target: str | None) -> tuple[str, str]:
    given = [(d, k) for d, k in (("route", route), ("consumer", consumer), ("target", target)) if k]
    if len(given) != 1:
        raise InvalidInput("give exactly one of route, consumer or target")
    return given[0]


@api.get("/analytics/timeseries", response_model=TimeseriesRead)
async def timeseries(
    session: Db,
    state: State,
    _: Viewer,
    metric: Annotated[str, Query(description=", ".join(query.METRICS))] = "requests",
    route: Annotated[str | None, Query(max_length=300)] = None,
    consumer: Annotated[str | None, Query(max_length=300)] = None,
    target: Annotated[str | None, Query(max_length=300)] = None,
    start: From = None,
    end: To = None,
    step: Annotated[str, Query(max_length=20, description="60s, 5m, 1h...")] = "1m",
) -> TimeseriesRead:
    dim, key = _dim_key(route, consumer, target)
    s, e = _range(start, end)
    step_s = _seconds(step, "step")
    points = await query.timeseries(
        session, live_of(state), dim=dim, key=key, metric_name=metric, start=s, end=e, step=step_s
    )
    a, b = query.align(s, e)
    return TimeseriesRead(
        dim=dim,
        key=key,
        metric=metric,
        start=_at(a),
        end=_at(b),
        step_seconds=step_s,
        points=[Point(t=_at(t), value=v) for t, v in points],
    )


@api.get("/analytics/trends", response_model=TrendsRead)
async def trends(
    session: Db,
    state: State,
    _: Viewer,
    route: Annotated[str | None, Query(max_length=300)] = None,
    consumer: Annotated[str | None, Query(max_length=300)] = None,
    target: Annotated[str | None, Query(max_length=300)] = None,
    window: Annotated[str, Query(max_length=20, description="e.g. 15m, 1h, 1d")] = "1h",
) -> TrendsRead:
    dim, key = _dim_key(route, consumer, target)
    w = _seconds(window, "window")
    if not 60 <= w <= 7 * 86400 or w % 60:
        raise InvalidInput("window must be whole minutes between 1m and 7d")
    baseline = int(state.config.telemetry.baseline.total_seconds())
    cur, prev, base, rows = await query.trends(
        session, live_of(state), dim=dim, key=key, window=w, baseline=baseline, now=time.time()
    )
    return TrendsRead(
        dim=dim,
        key=key,
        window_seconds=w,
        current_start=_at(cur),
        previous_start=_at(prev),
        baseline_start=_at(base),
        metrics=[TrendMetric(**r) for r in rows],
    )


@api.get("/calls", response_model=CallsPage)
async def list_calls(
    session: Db,
    state: State,
    _: Viewer,
    route: Annotated[str | None, Query(max_length=300)] = None,
    status: Annotated[str | None, Query(max_length=3, description="503 or 5xx")] = None,
    consumer: Annotated[str | None, Query(max_length=300)] = None,
    error: Annotated[str | None, Query(max_length=40, description="an error kind or 'any'")] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    trace_id: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[Instant | None, Query(alias="from")] = None,
    end: Annotated[Instant | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=calls.MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> CallsPage:
    return await calls.list_calls(
        session=session,
        route=route,
        status=status,
        consumer=consumer,
        error=error,
        request_id=request_id,
        trace_id=trace_id,
        start=start.timestamp() if start else None,
        end=end.timestamp() if end else None,
        limit=limit,
        cursor=cursor,
        horizon=_horizon(state),
    )


def _horizon(state: State) -> float:
    return state.config.telemetry.retention.calls.total_seconds()


@api.get("/calls/{request_id}", response_model=CallRead)
async def get_call(
    session: Db,
    state: State,
    _: Viewer,
    request_id: str,
    at: Annotated[
        Instant | None, Query(description="roughly when the call happened: searched first")
    ] = None,
) -> CallRead:
    return await calls.get_call(
        session=session,
        request_id=request_id,
        horizon=_horizon(state),
        near=at.timestamp() if at else None,
    )


@router.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
async def metrics(state: State, _: Viewer) -> PlainTextResponse:
    """The console's own metrics (viewer token; Prometheus can send it as a bearer token)."""
    text = render(live_of(state)) + render_metrics(state)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


router.include_router(api)

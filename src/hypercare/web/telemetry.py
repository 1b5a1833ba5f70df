"""Telemetry in the console: API health tiles, the APIs page, route pages, call detail and
the charts of an issue's routes. Everything is read through `telemetry.query` /
`telemetry.calls` and the live store, like the API does."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.detection import service as detection
from hypercare.detection.jobs import runtime
from hypercare.telemetry import calls, query
from hypercare.telemetry.external import CATCH_ALL, suggested_config
from hypercare.telemetry.jobs import live_of
from hypercare.telemetry.otlp_views import intake_of
from hypercare.triage import service as triage
from hypercare.triage.models import IssueRead
from hypercare.web import rules
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser, PageError
from hypercare.web.registry import ConsolePart, IssuePanel, NavItem, OverviewSlot

router = APIRouter(include_in_schema=False)

# range name -> (seconds, chart step)
RANGES: dict[str, tuple[int, int]] = {
    "15m": (900, 60),
    "1h": (3600, 60),
    "24h": (86400, 900),
    "7d": (7 * 86400, 3600),
}
TILE_SECONDS = 300
SPARK_SECONDS = 1800
FAILING_ROWS = 20


def _firing(state: AppState) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rule, route in runtime(state).detector.firing():
        out.setdefault(route, []).append(rule)
    return out


def _healthy(state: AppState) -> dict[str, int | None]:
    rt = runtime(state)
    out: dict[str, int | None] = {}
    now = time.time()
    for route in rt.live.routes:
        out[route] = rt.live.stats(route, now - 60, now).healthy_targets
    return out


def spark(values: list[float | None], width: int = 120, height: int = 28) -> str:
    """An SVG polyline's points for a small sparkline (no script needed)."""
    nums = [v or 0.0 for v in values]
    if not nums:
        return ""
    top = max(nums) or 1.0
    step = width / max(1, len(nums) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(nums)
    )


async def _tiles(session: AsyncSession, state: AppState) -> dict[str, Any]:
    now = time.time()
    live = live_of(state)
    rows = await query.summary(session, live, start=now - TILE_SECONDS, end=now, now=now)
    firing = _firing(state)
    configured = state.config.route_names()
    by_key = {r.key: r for r in rows}
    names = list(dict.fromkeys([*configured, *by_key]))
    tiles = []
    for name in names:
        points = await query.timeseries(
            session,
            live,
            dim="route",
            key=name,
            metric_name="requests",
            start=now - SPARK_SECONDS,
            end=now,
            step=60,
        )
        tiles.append(
            {
                "route": name,
                "row": by_key.get(name),
                "spark": spark([v for _, v in points]),
                "firing": firing.get(name, []),
            }
        )
    tiles.sort(key=lambda t: (not t["firing"], t["route"]))
    return {"tiles": tiles}


@router.get("/overview/api-health")
async def api_health(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    """The overview's API health tiles, fetched once the overview has loaded (one
    sparkline query per route)."""
    console = console_of(request)
    ctx = console.context(request, user.principal, user.csrf, data=await _tiles(session, state))
    return console.render(request, "_api_tiles.html", ctx)


def _chart(cid: str, x: list[int], series: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": cid, "data": {"x": x, "series": series}}


async def route_charts(
    session: AsyncSession, state: AppState, route: str, start: float, end: float, step: int
) -> list[dict[str, Any]]:
    """uPlot charts of one route: request rate (req/s, averaged over each step, as the
    tables compute it), error rate (%), p95 latency (ms). Each names its unit for the y-axis,
    whose scale starts at 0."""
    live = live_of(state)
    start, step = rules.chart_window(start, step)
    out = []
    slug = "".join(c if c.isalnum() else "-" for c in route)
    for metric, label, color, scale, unit in (
        ("rps", "request rate", "#175cd3", 1.0, "req/s"),
        ("error_rate", "error rate", "#b42318", 100.0, "%"),
        ("p95", "p95 latency", "#6941c6", 1.0, "ms"),
    ):
        points = await query.timeseries(
            session,
            live,
            dim="route",
            key=route,
            metric_name=metric,
            start=start,
            end=end,
            step=step,
        )
        x = [t for t, _ in points]
        values = [None if v is None else round(v * scale, 3) for _, v in points]
        chart = _chart(
            f"chart-{slug}-{metric}", x, [{"label": label, "color": color, "values": values}]
        )
        chart["data"]["unit"] = unit
        out.append({"title": f"{label} ({unit})", "unit": unit, **chart})
    return out


async def _issue_charts(session: AsyncSession, state: AppState, issue: IssueRead) -> dict[str, Any]:
    row = await triage.get_issue(session=session, issue_id=issue.id)
    gateway_routes = set(state.config.route_names())
    # only gateway and external routes have telemetry (a ticket's unmatched URL path has none)
    routes = [
        r for r in await detection.issue_routes(session=session, issue=row) if r in gateway_routes
    ]
    # the issue's own route first, then the routes its signals name
    routes.sort(key=lambda r: (r != issue.route, r))
    if not routes:
        return {"charts": []}
    now = datetime.now(UTC)
    start = (issue.impact_started_at or issue.created_at) - timedelta(minutes=15)
    end = min(now, issue.resolved_at + timedelta(minutes=15)) if issue.resolved_at else now
    seconds = max(60.0, (end - start).total_seconds())
    step = max(60, int(seconds // 240) // 60 * 60)
    charts = []
    for route in routes[:4]:
        charts.append(
            {
                "route": route,
                "charts": await route_charts(
                    session, state, route, start.timestamp(), end.timestamp(), step
                ),
            }
        )
    return {"charts": charts, "start": start, "end": end}


def _range_of(value: str | None) -> str:
    return value if value in RANGES else "1h"


@router.get("/apis")
async def apis(
    request: Request, state: State, session: Db, user: ConsoleUser, range: str | None = None
) -> Response:
    chosen = _range_of(range)
    seconds, _ = RANGES[chosen]
    now = time.time()
    rows = await query.summary(session, live_of(state), start=now - seconds, end=now, now=now)
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        rows=rows,
        ranges=list(RANGES),
        chosen=chosen,
        healthy=_healthy(state),
        firing=_firing(state),
        intake=_intake(state),
        unparsed=sorted(live_of(state).stats.unparsed.sources.items()),
    )
    return console.render(request, "apis.html", ctx)


def _intake(state: AppState) -> dict[str, Any]:
    """External sources (OTLP) with their malformed input, and route suggestions from the
    most frequent path templates under the catch-all."""
    it = intake_of(state)
    suggestions = it.templates.suggestions(10)
    return {
        "catch_all": CATCH_ALL,
        "sources": sorted(it.sources.items()),
        "suggestions": [
            (g, yaml.safe_dump([suggested_config(g)], sort_keys=False, default_flow_style=False))
            for g in suggestions
        ],
    }


async def _route_of(session: AsyncSession, state: AppState, route: str) -> str:
    """`route` if the gateway has it configured or ever recorded a call for it."""
    if len(route) <= 200 and (
        route in state.config.route_names()
        or await query.known_key(session, live_of(state), dim="route", key=route)
    ):
        return route
    raise PageError(
        404,
        f"No route named {route[:200]!r}: it is not in the gateway configuration and no "
        "call was recorded for it. The APIs page lists the routes.",
    )


@router.get("/route-charts/{route:path}")
async def api_route_charts(
    request: Request,
    state: State,
    session: Db,
    user: ConsoleUser,
    route: str,
    range: str | None = None,
) -> Response:
    """The route page's charts and trends, fetched by the page once it has loaded: they read
    the most rollups (a week of hours for 7d), the rest of the page reads a few rows."""
    route = await _route_of(session, state, route)
    chosen = _range_of(range)
    seconds, step = RANGES[chosen]
    now = time.time()
    live = live_of(state)
    baseline = int(state.config.telemetry.baseline.total_seconds())
    window = min(seconds, 86400)
    _, _, _, trend_rows = await query.trends(
        session, live, dim="route", key=route, window=window, baseline=baseline, now=now
    )
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        route=route,
        chosen=chosen,
        charts=await route_charts(session, state, route, now - seconds, now, step),
        trends=trend_rows,
        window=window,
    )
    return console.render(request, "_route_charts.html", ctx)


@router.get("/apis/{route:path}")
async def api_route(
    request: Request,
    state: State,
    session: Db,
    user: ConsoleUser,
    route: str,
    range: str | None = None,
) -> Response:
    route = await _route_of(session, state, route)
    chosen = _range_of(range)
    seconds, _ = RANGES[chosen]
    now = time.time()
    failing = await calls.list_calls(
        session=session, route=route, error="any", limit=FAILING_ROWS, start=now - seconds
    )
    server_errors = await calls.list_calls(
        session=session, route=route, status="5xx", limit=FAILING_ROWS, start=now - seconds
    )
    seen: dict[str, Any] = {}
    for c in [*failing.items, *server_errors.items]:
        seen.setdefault(c.request_id, c)
    recent = sorted(seen.values(), key=lambda c: c.time, reverse=True)[:FAILING_ROWS]
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        route=route,
        ranges=list(RANGES),
        chosen=chosen,
        failing=recent,
        firing=_firing(state).get(route, []),
    )
    return console.render(request, "api_route.html", ctx)


@router.get("/calls/{request_id}")
async def call_detail(
    request: Request,
    session: Db,
    state: State,
    user: ConsoleUser,
    request_id: str,
    at: float | None = None,
) -> Response:
    """One call; `at` (Unix seconds, set by the console's own links) says when to look."""
    if len(request_id) > 128:
        raise PageError(404, "no such call")
    horizon = state.config.telemetry.retention.calls.total_seconds()
    near = at if at is not None and math.isfinite(at) else None
    call = await calls.get_call(session=session, request_id=request_id, horizon=horizon, near=near)
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        call=call,
        capture=call.capture or None,
        capture_limit=state.config.telemetry.capture.max_body_bytes,
    )
    return console.render(request, "call.html", ctx)


PART = ConsolePart(
    name="telemetry",
    router=router,
    nav=(NavItem(label="APIs", href="/apis", section="apis", order=20, key="a"),),
    slots=(
        OverviewSlot(
            region="api_health",
            title="API health",
            template="_api_tiles.html",
            load=_tiles,
            href="/overview/api-health",
        ),
    ),
    issue_panels=(
        IssuePanel(
            region="route_charts",
            title="Route charts",
            template="_issue_charts.html",
            load=_issue_charts,
        ),
    ),
)

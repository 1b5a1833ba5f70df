"""Launches in the console: the launch page (readiness scorecard, SLOs and error budgets,
KPIs, roster, evaluation history, reports) and the overview tile saying which launch is
running and how far it is from exit. Reads go through `hypercare.launch` as the API does."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.errors import DomainError
from hypercare.launch import report, service
from hypercare.launch.jobs import RUNNING
from hypercare.launch.report import budget_svg
from hypercare.launch.views import slo_reads
from hypercare.store.base import utcnow
from hypercare.telemetry import jobs as telemetry_jobs
from hypercare.telemetry import query
from hypercare.web.console import SECURITY_HEADERS, console_of
from hypercare.web.deps import ConsoleUser, PageError
from hypercare.web.registry import ConsolePart, NavItem, OverviewSlot

router = APIRouter(include_in_schema=False)

LaunchName = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]


async def _running(session: AsyncSession, state: AppState) -> dict[str, Any]:
    """Each running launch with its live scorecard: the overview's "how far from exit"."""
    now = utcnow()
    recs = await service.records(session=session)
    live = telemetry_jobs.collector_of(state).live
    rows = []
    every = await service.launches(session=session, config=state.config)
    for launch in every:
        record = recs.get(launch.name)
        st = service.state_of(launch, record, now)
        if st not in RUNNING:
            continue
        card = await service.exit_check(
            session=session, live=live, config=state.config, name=launch.name, now=now, store=False
        )
        end = service.end_of(launch, record)
        rows.append(
            {
                "name": launch.name,
                "state": st.value,
                "end": end,
                "days_left": max(0.0, round((end - now).total_seconds() / 86400, 1)),
                "card": card,
                "failing": [r for r in card.results if not r.passed],
            }
        )
    return {"launches": rows, "declared": len(every)}


@router.get("/overview/launch")
async def launch_tile(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    console = console_of(request)
    ctx = console.context(request, user.principal, user.csrf, data=await _running(session, state))
    return console.render(request, "_launch_now.html", ctx)


@router.get("/launches")
async def launches_page(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    recs = await service.records(session=session)
    now = utcnow()
    launches = [
        service.to_read(d.launch, recs.get(d.launch.name), now, d.source)
        for d in await service.declared(session=session, config=state.config)
    ]
    console = console_of(request)
    ctx = console.context(request, user.principal, user.csrf, launches=launches)
    return console.render(request, "launches.html", ctx)


async def _kpis(state: AppState, session: AsyncSession, name: str) -> list[dict[str, Any]]:
    launch = await service.find(session=session, config=state.config, name=name)
    live = telemetry_jobs.collector_of(state).live
    now = utcnow().timestamp()
    out = []
    for k in launch.kpis:
        value = None
        if k.route and k.metric:
            seconds = k.window.total_seconds()
            aggs = await query.collect(
                session,
                live,
                dim="route",
                start=now - seconds,
                end=now,
                key=k.route,
                histograms=("total", "upstream", "gateway"),
            )
            value = query.metric(next(iter(aggs.values()), None), k.metric, seconds)
        out.append({"kpi": k, "value": value})
    return out


@router.get("/launches/{name}")
async def launch_page(
    name: LaunchName, request: Request, state: State, session: Db, user: ConsoleUser
) -> Response:
    try:
        found = await service.locate(session=session, config=state.config, name=name)
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    launch = found.launch
    now = utcnow()
    record = await service.record_of(session=session, name=name)
    live = telemetry_jobs.collector_of(state).live
    card = await service.exit_check(
        session=session, live=live, config=state.config, name=name, now=now
    )
    slos = await slo_reads(state, session, name)
    end = service.end_of(launch, record)
    step = 3600 if (now - launch.start).total_seconds() > 6 * 3600 else 60
    start = max(launch.start.timestamp(), now.timestamp() - 28 * 86400)
    points = await service.slo_points(
        session=session,
        live=live,
        slos=launch.slos,
        route_components=service.route_components(state.config),
        start=start,
        end=now.timestamp(),
        step=step,
    )
    from hypercare.launch.rules import budget_series

    charts = {
        s.name: budget_svg(
            budget_series(
                points.get(s.name, []), target=s.target, start=start // step * step, step=step
            )
        )
        for s in launch.slos
    }
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        launch=service.to_read(launch, record, now, found.source),
        end=end,
        card=card,
        slos=slos,
        charts=charts,
        kpis=await _kpis(state, session, name),
        history=await service.evaluations(session=session, name=name, limit=20),
    )
    return console.render(request, "launch.html", ctx)


@router.get("/launches/{name}/report.{fmt}")
async def launch_report(
    name: LaunchName,
    fmt: Literal["html", "md"],
    state: State,
    session: Db,
    user: ConsoleUser,
    kind: Literal["daily", "final"] = "daily",
) -> Response:
    """The report as a standalone printable page or a Markdown download."""
    try:
        data = await service.load_report(
            session=session,
            live=telemetry_jobs.collector_of(state).live,
            config=state.config,
            name=name,
            kind=kind,
            now=utcnow(),
        )
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    if fmt == "md":
        return PlainTextResponse(
            report.markdown(data),
            media_type="text/markdown; charset=utf-8",
            headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'attachment; filename="{name}-{kind}.md"',
            },
        )
    return HTMLResponse(report.html(data), headers=SECURITY_HEADERS)


PART = ConsolePart(
    name="launch",
    router=router,
    nav=(NavItem(label="Launches", href="/launches", section="launches", order=5, key="l"),),
    slots=(
        OverviewSlot(
            region="launch",
            title="Launch",
            template="_launch_now.html",
            load=_running,
            href="/overview/launch",
        ),
    ),
)

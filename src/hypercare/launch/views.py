"""HTTP for launches, under /api/v1/launches."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, Responder, State, Viewer
from hypercare.api.state import AppState
from hypercare.launch import report, rules, service
from hypercare.launch.models import (
    EvaluationRead,
    LaunchChanges,
    LaunchRead,
    LaunchSpec,
    SloRead,
    StateChange,
)
from hypercare.store.base import utcnow
from hypercare.telemetry import jobs as telemetry_jobs

router = APIRouter(prefix="/api/v1/launches", tags=["launches"])

# the report page holds no script and loads nothing: its style and charts are inline
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
LaunchName = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]


@router.get("", response_model=list[LaunchRead])
async def list_launches(state: State, session: Db, _: Viewer) -> list[LaunchRead]:
    """Every launch with its current state: those of the config file (`source: config`),
    then those made through the API (`source: api`)."""
    recs = await service.records(session=session)
    now = utcnow()
    return [
        service.to_read(d.launch, recs.get(d.launch.name), now, d.source)
        for d in await service.declared(session=session, config=state.config)
    ]


@router.post("", response_model=LaunchRead, status_code=201)
async def create_launch(
    body: LaunchSpec, request: Request, state: State, session: Db, who: Responder
) -> LaunchRead:
    """Make a launch: the fields of a `launches:` entry of the config file, as JSON, with the
    same validation (routes, components, metrics and priorities must exist: 422 names the
    field). 409 when the name is taken (by the file or the API). Evaluated by the running
    server from then on, like a declared one."""
    spec = await request.json()  # as sent: durations stay "72h", not ISO 8601
    now = utcnow()
    made = await service.create(
        session=session, config=state.config, spec=spec, actor=who.name, now=now
    )
    return service.to_read(made.launch, None, now, made.source)


@router.get("/{name}", response_model=LaunchRead)
async def get_launch(name: LaunchName, state: State, session: Db, _: Viewer) -> LaunchRead:
    found = await service.locate(session=session, config=state.config, name=name)
    record = await service.record_of(session=session, name=name)
    return service.to_read(found.launch, record, utcnow(), found.source)


@router.patch("/{name}", response_model=LaunchRead)
async def edit_launch(
    name: LaunchName,
    state: State,
    session: Db,
    who: Responder,
    body: Annotated[
        LaunchChanges,
        Body(
            description="Fields of the launch to replace (as in POST); null restores a "
            "field's default. The name cannot change.",
            examples=[{"end": "2026-03-01T09:00:00Z", "objectives": ["checkout p95 < 400ms"]}],
        ),
    ],
) -> LaunchRead:
    """Edit a launch made through the API; the result is validated as on creation. A launch
    of the config file answers 409 (edit the file); an exited one 409 too."""
    now = utcnow()
    made = await service.update(
        session=session,
        config=state.config,
        name=name,
        changes=body.model_extra or {},
        actor=who.name,
        now=now,
    )
    record = await service.record_of(session=session, name=name)
    return service.to_read(made.launch, record, now, made.source)


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_launch(name: LaunchName, state: State, session: Db, _: Responder) -> Response:
    """Delete a launch made through the API that has not run: still planned, or never
    evaluated (its state and evaluations go with it). 409 for a launch with history (move
    it to exited instead) and for one of the config file."""
    await service.delete(session=session, config=state.config, name=name, now=utcnow())
    return Response(status_code=204)


@router.post("/{name}/state", response_model=LaunchRead)
async def change_state(
    name: LaunchName, body: StateChange, state: State, session: Db, who: Responder
) -> LaunchRead:
    """Move the launch: planned → active → exit_review → exited, or extended with a new
    end. 409 names the moves allowed from the current state."""
    found = await service.locate(session=session, config=state.config, name=name)
    now = utcnow()
    record = await service.change_state(
        session=session, launch=found.launch, change=body, actor=who.name, now=now
    )
    return service.to_read(found.launch, record, now, found.source)


@router.get("/{name}/slos", response_model=list[SloRead])
async def launch_slos(name: LaunchName, state: State, session: Db, _: Viewer) -> list[SloRead]:
    """Each SLO over its rolling window: SLI, error budget left, and the burn alert firing."""
    return await slo_reads(state, session, name)


async def slo_reads(state: AppState, session: AsyncSession, name: str) -> list[SloRead]:
    launch = await service.find(session=session, config=state.config, name=name)
    record = await service.record_of(session=session, name=name)
    now = utcnow()
    live = telemetry_jobs.collector_of(state).live
    comps = service.route_components(state.config)
    statuses = await service.slo_statuses(
        session=session,
        live=live,
        config=state.config,
        launch=launch,
        end=service.end_of(launch, record),
        now=now,
    )
    burns = await service.burn_points(
        session=session, live=live, slos=launch.slos, route_components=comps, now=now.timestamp()
    )
    out = []
    for slo in launch.slos:
        s = statuses[slo.name]
        alert = rules.burn_alert(burns.get(slo.name, []), target=slo.target, now=now.timestamp())
        out.append(
            SloRead(
                name=slo.name,
                kind=slo.kind,
                route=slo.route,
                component=slo.component,
                routes=rules.slo_routes(slo, comps),
                target=slo.target,
                window_seconds=s.window_seconds,
                calls=s.total,
                bad=s.bad,
                sli=s.sli,
                met=s.met,
                budget_remaining=s.budget_remaining,
                burn=None if alert is None else alert.evidence(),
            )
        )
    return out


@router.get("/{name}/exit-check")
async def exit_check(name: LaunchName, state: State, session: Db, _: Viewer) -> dict[str, Any]:
    """The readiness scorecard: each exit criterion evaluated now, with its evidence.
    `passed` is true when every criterion passes (the same as `hypercare launch exit-check`)."""
    card = await service.exit_check(
        session=session,
        live=telemetry_jobs.collector_of(state).live,
        config=state.config,
        name=name,
        now=utcnow(),
    )
    return card.as_dict()


@router.get("/{name}/evaluations", response_model=list[EvaluationRead])
async def evaluations(
    name: LaunchName,
    state: State,
    session: Db,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[EvaluationRead]:
    """The history of exit-criteria evaluations, newest first (kept when the outcome
    changes, and hourly)."""
    await service.find(session=session, config=state.config, name=name)
    return await service.evaluations(session=session, name=name, limit=limit)


@router.get("/{name}/report", response_class=Response)
async def launch_report(
    name: LaunchName,
    state: State,
    session: Db,
    _: Viewer,
    kind: Literal["daily", "final"] = "daily",
    format: Literal["html", "md"] = "html",
) -> Response:
    """The daily (last 24 h) or final report, as a printable HTML page or Markdown."""
    data = await service.load_report(
        session=session,
        live=telemetry_jobs.collector_of(state).live,
        config=state.config,
        name=name,
        kind=kind,
        now=utcnow(),
    )
    if format == "md":
        return PlainTextResponse(report.markdown(data), media_type="text/markdown; charset=utf-8")
    return HTMLResponse(
        report.html(data),
        headers={"Content-Security-Policy": REPORT_CSP},
    )

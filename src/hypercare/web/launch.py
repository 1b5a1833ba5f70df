"""Launches in the console: the launches list with its "New launch" form, the launch page
(readiness scorecard, SLOs and error budgets, KPIs, roster, evaluation history, reports,
the state-change form) and the overview tile saying which launch is running and how far it
is from exit. Reads and changes go through `hypercare.launch` as the API does."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.errors import DomainError, InvalidInput
from hypercare.launch import report, service
from hypercare.launch.jobs import RUNNING
from hypercare.launch.models import StateChange
from hypercare.launch.report import budget_svg
from hypercare.launch.rules import budget_series
from hypercare.launch.views import slo_reads
from hypercare.store.base import utcnow
from hypercare.telemetry import jobs as telemetry_jobs
from hypercare.telemetry import query
from hypercare.web.console import SECURITY_HEADERS, console_of
from hypercare.web.deps import ConsoleUser, CsrfUser, PageError, SignedIn, form_text
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
    return await _launches(request, state, session, user, {}, [])


async def _launches(
    request: Request,
    state: AppState,
    session: AsyncSession,
    user: SignedIn,
    values: dict[str, str],
    errors: list[str],
    status: int = 422,
) -> Response:
    recs = await service.records(session=session)
    now = utcnow()
    launches = [
        service.to_read(d.launch, recs.get(d.launch.name), now, d.source)
        for d in await service.declared(session=session, config=state.config)
    ]
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        launches=launches,
        values=values,
        errors=errors,
        routes=sorted(service.route_components(state.config)),
    )
    return console.render(request, "launches.html", ctx, status=status if errors else 200)


# the "New launch" form: field → the most characters it takes
_NEW_FIELDS = {
    "name": 100,
    "start": 40,
    "end": 40,
    "time_zone": 60,
    "routes": 4000,
    "components": 2000,
    "objectives": 10_000,
    "slos": 20_000,
    "exit_criteria": 20_000,
}


def form_spec(values: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The form's values as the JSON of a ``launches:`` entry, and what cannot be read.
    Times are the browser's ``datetime-local`` in the launch's time zone; routes and
    components comma-separated; objectives one per line; SLOs and exit criteria YAML
    lists, as in the config file (no anchors, no ``${VAR}``)."""
    errors: list[str] = []
    zone_name = values.get("time_zone") or "UTC"
    spec: dict[str, Any] = {"name": values.get("name", ""), "time_zone": zone_name}
    try:
        zone: tzinfo = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC  # the time zone's own error is reported by the validation
    for key in ("start", "end"):
        text = values.get(key, "")
        if not text:
            continue
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            errors.append(f"{key}: use a date and time like 2026-11-27T14:30")
            continue
        spec[key] = (at if at.tzinfo else at.replace(tzinfo=zone)).isoformat()
    for key in ("routes", "components"):
        items = [x.strip() for x in values.get(key, "").split(",") if x.strip()]
        if items:
            spec[key] = items
    objectives = [x.strip() for x in values.get("objectives", "").splitlines() if x.strip()]
    if objectives:
        spec["objectives"] = objectives
    for key in ("slos", "exit_criteria"):
        text = values.get(key, "")
        if not text.strip():
            continue
        try:
            parsed = safe_yaml(text)
        except ValueError as exc:
            errors.append(f"{key.replace('_', ' ')}: {exc}")
            continue
        if not isinstance(parsed, list):
            example = "- no_open: [P1, P2]" if key == "exit_criteria" else "- {name: avail, ...}"
            errors.append(f"{key.replace('_', ' ')}: give a YAML list, e.g. {example}")
            continue
        spec[key] = parsed
    return spec, errors


def safe_yaml(text: str) -> Any:
    """Plain YAML (no anchors or aliases: no expansion bombs); ValueError says why not."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ValueError("anchors and aliases (&, *) are not allowed here")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ValueError(f"not valid YAML: {where}{getattr(exc, 'problem', None) or exc}") from None


@router.post("/launches")
async def create_launch(request: Request, state: State, session: Db, user: CsrfUser) -> Response:
    """The "New launch" form: made as through ``POST /api/v1/launches``; errors are shown
    above the form, which keeps what was typed."""
    user.require(Role.responder, "Creating a launch")
    form = await request.form()
    values = {k: str(form.get(k) or "").strip()[:n] for k, n in _NEW_FIELDS.items()}
    spec, errors = form_spec(values)
    if errors:
        return await _launches(request, state, session, user, values, errors)
    try:
        await service.create(
            session=session, config=state.config, spec=spec, actor=user.principal.name, now=utcnow()
        )
    except InvalidInput as exc:
        details = exc.details if isinstance(exc.details, list) else []
        listed = [
            f"{str(d['field']).removeprefix('body').lstrip('.') or 'launch'}: {d['message']}"
            for d in details
        ]
        return await _launches(request, state, session, user, values, listed or [exc.message])
    except DomainError as exc:
        return await _launches(request, state, session, user, values, [exc.message], exc.status)
    return RedirectResponse(f"/launches/{spec['name']}", status_code=303)


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
    return await _launch_page(request, state, session, user, name)


async def _launch_page(
    request: Request,
    state: AppState,
    session: AsyncSession,
    user: SignedIn,
    name: str,
    *,
    move: dict[str, str] | None = None,
    move_error: str | None = None,
    status: int = 200,
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
        move=move or {},
        move_error=move_error,
    )
    return console.render(request, "launch.html", ctx, status=status)


@router.post("/launches/{name}/state")
async def launch_state(
    name: LaunchName, request: Request, state: State, session: Db, user: CsrfUser
) -> Response:
    """The state-change form: as ``POST /api/v1/launches/{name}/state``. A refused move is
    shown above the form, which keeps what was typed."""
    user.require(Role.responder, "Changing a launch's state")
    move = {
        "to": await form_text(request, "to", max_length=20) or "",
        "end": await form_text(request, "end", max_length=40) or "",
        "note": await form_text(request, "note", max_length=5000) or "",
    }
    try:
        found = await service.locate(session=session, config=state.config, name=name)
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    error: str | None = None
    end: datetime | None = None
    if move["end"]:
        try:
            at = datetime.fromisoformat(move["end"])
            end = at if at.tzinfo else at.replace(tzinfo=ZoneInfo(found.launch.time_zone))
        except ValueError:
            error = "new end: use a date and time like 2026-11-27T14:30"
    if error is None:
        try:
            change = StateChange.model_validate(
                {"to": move["to"], "end": end, "note": move["note"]}
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "state"
            error = f"{field}: {first['msg']}"
    if error is None:
        try:
            await service.change_state(
                session=session,
                launch=found.launch,
                change=change,
                actor=user.principal.name,
                now=utcnow(),
            )
        except DomainError as exc:
            return await _launch_page(
                request,
                state,
                session,
                user,
                name,
                move=move,
                move_error=exc.message,
                status=exc.status,
            )
        return RedirectResponse(f"/launches/{name}#state", status_code=303)
    return await _launch_page(
        request, state, session, user, name, move=move, move_error=error, status=422
    )


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

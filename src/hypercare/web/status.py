"""The status page in the console: components with their shown and automatic state, manual
overrides, public incidents (drafts included) with their updates, maintenance windows; and
on each issue, its public incidents with an "open public incident" form. The actions go
through the same functions as the API (`hypercare.status.views`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.auth.rules import Role, allows
from hypercare.bounds import Id
from hypercare.errors import DomainError
from hypercare.status import jobs, service
from hypercare.status import views as api
from hypercare.status.models import (
    ComponentChange,
    IncidentCreate,
    MaintenanceCreate,
    OverrideCreate,
    UpdateCreate,
)
from hypercare.status.rules import INCIDENT_STATUSES, LABELS, SCENARIOS, ComponentStatus
from hypercare.store.base import utcnow
from hypercare.triage.models import IssueRead
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser, CsrfUser, PageError, form_text
from hypercare.web.registry import ConsolePart, IssuePanel, NavItem

router = APIRouter(include_in_schema=False)

STATUSES = [(s.value, LABELS[s]) for s in ComponentStatus]


async def _issue_panel(session: AsyncSession, state: AppState, issue: IssueRead) -> dict[str, Any]:
    rows = await service.list_incidents(session=session, published_only=False, issue_id=issue.id)
    updates = await service.updates_of(session=session, incident_ids=[i.id for i in rows])
    return {
        "incidents": [service.incident_read(i, updates[i.id]) for i in rows],
        "components": [c.name for c in state.config.status.components],
        "scenarios": SCENARIOS,
        "statuses": INCIDENT_STATUSES,
        "enabled": state.config.status.enabled,
    }


@router.get("/status-page")
async def status_page(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    rt = jobs.runtime(state)
    now = utcnow()
    incidents = await service.list_incidents(session=session, published_only=False, limit=50)
    updates = await service.updates_of(session=session, incident_ids=[i.id for i in incidents])
    overrides = await service.active_overrides(session=session, now=now)
    maint = await service.list_maintenances(session=session, since=now)
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        components=await api.list_components(state, user.principal),
        incidents=[service.incident_read(i, updates[i.id]) for i in incidents],
        overrides=[service.override_read(o) for o in overrides],
        maintenances=[service.maintenance_read(m, now) for m in maint],
        statuses=STATUSES,
        incident_statuses=INCIDENT_STATUSES,
        scenarios=SCENARIOS,
        can_change=allows(user.principal.role, Role.responder),
        snapshot_at=rt.snapshot_at,
    )
    return console.render(request, "status_page.html", ctx)


def _page_error(exc: Exception) -> PageError:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return PageError(422, f"{where}: {err['msg']}" if where else str(err["msg"]))
    if isinstance(exc, DomainError):
        return PageError(exc.status, exc.message)
    raise exc


def _minutes(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise PageError(422, f"minutes must be a whole number (got {value[:20]!r})")
    return int(value)


@router.post("/status-page/overrides")
async def add_override(request: Request, state: State, session: Db, user: CsrfUser) -> Response:
    user.require(Role.responder, "Overriding a component's state")
    try:
        body = OverrideCreate(
            component=await form_text(request, "component", max_length=80) or "",
            status=await form_text(request, "status", max_length=40) or "",
            reason=await form_text(request, "reason", max_length=2000) or "",
            expires_in_minutes=_minutes(await form_text(request, "minutes", max_length=10)),
        )
        await api.add_override(state, session, user.principal, body)
    except (ValidationError, DomainError) as exc:
        raise _page_error(exc) from exc
    return RedirectResponse("/status-page#components", status_code=303)


@router.post("/status-page/overrides/{override_id}/lift")
async def lift_override(state: State, session: Db, user: CsrfUser, override_id: Id) -> Response:
    user.require(Role.responder, "Lifting an override")
    try:
        await api.lift_override(state, session, user.principal, override_id)
    except DomainError as exc:
        raise _page_error(exc) from exc
    return RedirectResponse("/status-page#components", status_code=303)


@router.post("/issues/{issue_id}/status-incident")
async def open_incident(
    request: Request, state: State, session: Db, user: CsrfUser, issue_id: Id
) -> Response:
    user.require(Role.responder, "Opening a public incident")
    form = await request.form()
    try:
        body = IncidentCreate(
            issue_id=issue_id,
            name=await form_text(request, "name", max_length=200) or "",
            components=[str(c) for c in form.getlist("components")][:200],
            scenario=await form_text(request, "scenario", max_length=40),
            body=await form_text(request, "body", max_length=5000),
            workaround=await form_text(request, "workaround", max_length=1000),
            next_update_in_minutes=_minutes(await form_text(request, "next", max_length=10)),
            publish=form.get("publish") == "on",
        )
        await api.create_incident(state, session, user.principal, body)
    except (ValidationError, DomainError) as exc:
        raise _page_error(exc) from exc
    return RedirectResponse(f"/issues/{issue_id}#public-incident", status_code=303)


@router.post("/status-page/incidents/{incident_id}/updates")
async def add_update(
    request: Request, state: State, session: Db, user: CsrfUser, incident_id: Id
) -> Response:
    user.require(Role.responder, "Posting a public update")
    form = await request.form()
    try:
        changes = []
        component = await form_text(request, "component", max_length=80)
        new_state = await form_text(request, "component_status", max_length=40)
        if component and new_state:
            changes.append(ComponentChange(component=component, status=new_state))
        body = UpdateCreate(
            status=await form_text(request, "status", max_length=20) or "",
            body=await form_text(request, "body", max_length=5000),
            scenario=await form_text(request, "scenario", max_length=40),
            affected=changes,
            publish=True if form.get("publish") == "on" else None,
        )
        await api.add_update(state, session, user.principal, incident_id, body)
    except (ValidationError, DomainError) as exc:
        raise _page_error(exc) from exc
    back = await form_text(request, "back", max_length=40)
    if back and back.isdigit():
        return RedirectResponse(f"/issues/{back}#public-incident", status_code=303)
    return RedirectResponse(f"/status-page#incident-{incident_id}", status_code=303)


def _utc(value: str | None, name: str) -> datetime:
    if not value:
        raise PageError(422, f"{name} is required")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PageError(422, f"{name} is not a date and time: {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.post("/status-page/maintenances")
async def add_maintenance(request: Request, state: State, session: Db, user: CsrfUser) -> Response:
    user.require(Role.responder, "Scheduling maintenance")
    form = await request.form()
    try:
        body = MaintenanceCreate(
            name=await form_text(request, "name", max_length=200) or "",
            body=await form_text(request, "body", max_length=5000) or "",
            components=[str(c) for c in form.getlist("components")][:200],
            scheduled_for=_utc(await form_text(request, "start", max_length=40), "start"),
            scheduled_until=_utc(await form_text(request, "end", max_length=40), "end"),
        )
        await api.add_maintenance(state, session, user.principal, body)
    except (ValidationError, DomainError) as exc:
        raise _page_error(exc) from exc
    return RedirectResponse("/status-page#maintenance", status_code=303)


PART = ConsolePart(
    name="status",
    router=router,
    nav=(
        NavItem(label="Status page", href="/status-page", section="status-page", order=38, key="p"),
    ),
    issue_panels=(
        IssuePanel(
            region="response",
            title="Public incident",
            template="_status_incident.html",
            load=_issue_panel,
        ),
    ),
)

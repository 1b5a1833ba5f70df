"""The issue tracker in the console: triage queue, issue page, new issue form, actions.

Every action calls the same `hypercare.triage.service` function as the API, after the same
role check (`SignedIn.require`), inside the request's transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.bounds import MAX_ID, Id
from hypercare.detection import service as detection_service
from hypercare.errors import DomainError
from hypercare.triage import service
from hypercare.triage.models import IssueCreate, IssueRead
from hypercare.triage.rules import OPEN, SlaState, Status
from hypercare.web import queries, rules
from hypercare.web.console import console_of, is_htmx
from hypercare.web.deps import ConsoleUser, CsrfUser, PageError, SignedIn, form_text

router = APIRouter(include_in_schema=False)

_MAX_TEXT = 20_000
_STATUS_CHOICES = ("open", "all", *(s.value for s in Status))


# --- triage queue -------------------------------------------------------------------------


def _one(request: Request, name: str, valid: tuple[str, ...] | list[str]) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in valid:
        raise PageError(422, f"unknown {name} {value!r}; choose one of: {', '.join(valid)}")
    return value


def _queue_filters(request: Request, state: AppState) -> tuple[dict[str, str], service.IssueFilter]:
    q = (request.query_params.get("q") or "").strip()[:200] or None
    status = _one(request, "status", _STATUS_CHOICES) or "open"
    priority = _one(request, "priority", list(state.matrix.by_name))
    sla = _one(request, "sla", [s.value for s in SlaState])
    component = (request.query_params.get("component") or "").strip()[:120] or None
    assignee = (request.query_params.get("assignee") or "").strip()[:120] or None
    if status == "open":
        statuses: tuple[str, ...] = tuple(s.value for s in OPEN)
    elif status == "all":
        statuses = ()
    else:
        statuses = (status,)
    shown = {
        k: v
        for k, v in {
            "q": q,
            "status": status,
            "priority": priority,
            "sla": sla,
            "component": component,
            "assignee": assignee,
        }.items()
        if v
    }
    filters = service.IssueFilter(
        status=statuses,
        priority=(priority,) if priority else (),
        component=component,
        assignee=assignee,
        sla_state=(sla,) if sla else (),
        q=q,
    )
    return shown, filters


@router.get("/triage")
async def triage(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    console = console_of(request)
    shown, filters = _queue_filters(request, state)
    sort_raw = request.query_params.get("sort")
    sort, descending = rules.parse_sort(sort_raw)
    try:
        offset = min(max(0, int(request.query_params.get("offset", "0"))), MAX_ID)
    except ValueError:
        offset = 0
    size = state.config.web.page_size
    issues, total = await service.list_issues(
        session=session,
        filters=filters,
        limit=size,
        offset=offset,
        sort=sort,
        descending=descending,
    )
    components, assignees = await queries.choices(session=session)

    def link(**changes: Any) -> str:
        params = {**shown, "sort": ("-" if descending else "") + sort, "offset": str(offset)}
        params.update({k: str(v) for k, v in changes.items()})
        params = {k: v for k, v in params.items() if v not in ("", "0", "urgency")}
        return "/triage" + (f"?{urlencode(params)}" if params else "")

    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        issues=[service.to_read(i, state.matrix) for i in issues],
        total=total,
        offset=offset,
        size=size,
        filters=shown,
        sort=sort,
        descending=descending,
        link=link,
        statuses=_STATUS_CHOICES,
        levels=state.matrix.levels,
        sla_states=[s.value for s in SlaState],
        components=components,
        assignees=assignees,
        marker=await queries.change_marker(session=session),
    )
    return console.render(request, "triage.html", ctx)


# --- new issue ----------------------------------------------------------------------------


def _new_form(
    request: Request, state: AppState, user: SignedIn, values: dict[str, str], errors: list[str]
) -> Response:
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        values=values,
        errors=errors,
        levels=state.matrix.levels,
        default_priority=state.matrix.default_priority,
    )
    return console.render(request, "new_issue.html", ctx, status=422 if errors else 200)


@router.get("/issues/new")
async def new_issue_form(request: Request, state: State, user: ConsoleUser) -> Response:
    user.require(Role.support, "Reporting an issue")
    return _new_form(request, state, user, {}, [])


_NEW_FIELDS = {
    "title": 300,
    "description": 20_000,
    "priority": 4,
    "component": 120,
    "route": 200,
    "labels": 2_000,
    "assignee": 120,
    "impact_started_at": 40,
}


@router.post("/issues/new")
async def create_issue(request: Request, state: State, session: Db, user: CsrfUser) -> Response:
    user.require(Role.support, "Reporting an issue")
    form = await request.form()
    values = {k: str(form.get(k) or "").strip()[: n * 2] for k, n in _NEW_FIELDS.items()}
    errors: list[str] = []
    impact: datetime | None = None
    if values["impact_started_at"]:
        try:
            impact = datetime.fromisoformat(values["impact_started_at"])
            impact = impact.replace(tzinfo=UTC) if impact.tzinfo is None else impact
        except ValueError:
            errors.append("Impact started: use a date and time like 2026-11-27T14:30 (UTC).")
    try:
        data = IssueCreate(
            title=values["title"],
            description=values["description"],
            priority=values["priority"] or None,
            component=values["component"] or None,
            route=values["route"] or None,
            labels=[x.strip() for x in values["labels"].split(",") if x.strip()],
            assignee=values["assignee"] or None,
            impact_started_at=impact,
        )
    except ValidationError as exc:
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"]).replace("_", " ").capitalize()
            errors.append(f"{field}: {e['msg']}.")
        return _new_form(request, state, user, values, errors)
    if errors:
        return _new_form(request, state, user, values, errors)
    try:
        issue = await service.create_issue(
            session=session, matrix=state.matrix, data=data, actor=user.principal.name
        )
    except DomainError as exc:
        return _new_form(request, state, user, values, [exc.message])
    return RedirectResponse(f"/issues/{issue.id}", status_code=303)


# --- issue page ---------------------------------------------------------------------------


async def _panels(
    request: Request, session: AsyncSession, state: AppState, issue: IssueRead
) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    console = console_of(request)
    return {
        region: [(p, await p.load(session, state, issue)) for p in panels]
        for region, panels in console.issue_panels.items()
    }


async def _read(session: AsyncSession, state: AppState, issue_id: int) -> IssueRead:
    return service.to_read(
        await service.get_issue(session=session, issue_id=issue_id), state.matrix
    )


async def _render_issue(
    request: Request,
    state: AppState,
    session: AsyncSession,
    user: SignedIn,
    issue_id: int,
    template: str,
    whole: bool,
) -> Response:
    """An issue with its timeline in `template`; `whole`: the page's other parts too."""
    console = console_of(request)
    issue = await _read(session, state, issue_id)
    extra: dict[str, Any] = {}
    if whole:
        extra = {
            "level": state.matrix.by_name.get(issue.priority),
            "levels": state.matrix.levels,
            "panels": await _panels(request, session, state, issue),
            "marker": await queries.change_marker(session=session),
            "flaps": await detection_service.flaps_of(session=session, issue_id=issue_id),
            "error": None,
        }
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        issue=issue,
        timeline=await service.timeline(session=session, issue_id=issue_id),
        **extra,
    )
    return console.render(request, template, ctx)


@router.get("/issues/{issue_id}")
async def issue_page(
    request: Request, state: State, session: Db, user: ConsoleUser, issue_id: Id
) -> Response:
    return await _render_issue(request, state, session, user, issue_id, "issue.html", True)


@router.get("/issues/{issue_id}/timeline")
async def issue_timeline(
    request: Request, state: State, session: Db, user: ConsoleUser, issue_id: Id
) -> Response:
    """The timeline and the header facts of an issue, refreshed live on its page."""
    return await _render_issue(request, state, session, user, issue_id, "_timeline.html", False)


# --- actions ------------------------------------------------------------------------------


async def _done(
    request: Request, state: AppState, user: SignedIn, issue_id: Id, message: str, session: Db
) -> Response:
    """After an action: the updated row for the triage queue (htmx), else back to the issue."""
    form = await request.form()
    if is_htmx(request) and form.get("view") == "row":
        console = console_of(request)
        issue = await _read(session, state, issue_id)
        ctx = console.context(
            request, user.principal, user.csrf, issue=issue, levels=state.matrix.levels
        )
        return console.render(
            request,
            "_row.html",
            ctx,
            # after the swap has settled: the message confirms what the row already shows
            headers={
                "HX-Trigger-After-Settle": json.dumps({"hc:flash": f"#{issue_id}: {message}"})
            },
        )
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    return RedirectResponse(f"/issues/{issue_id}#timeline", status_code=303)


@router.post("/issues/{issue_id}/assign")
async def assign(
    request: Request, state: State, session: Db, user: CsrfUser, issue_id: Id
) -> Response:
    user.require(Role.responder, "Assigning an issue")
    assignee = await form_text(request, "assignee", max_length=120)
    await service.update_issue(
        session=session,
        matrix=state.matrix,
        issue_id=issue_id,
        changes={"assignee": assignee},
        actor=user.principal.name,
    )
    text = f"assigned to {assignee}" if assignee else "unassigned"
    return await _done(request, state, user, issue_id, text, session)


@router.post("/issues/{issue_id}/priority")
async def set_priority(
    request: Request, state: State, session: Db, user: CsrfUser, issue_id: Id
) -> Response:
    user.require(Role.responder, "Changing the priority")
    priority = await form_text(request, "priority", max_length=4)
    if priority is None:
        raise PageError(422, "choose a priority")
    await service.update_issue(
        session=session,
        matrix=state.matrix,
        issue_id=issue_id,
        changes={"priority": priority},
        actor=user.principal.name,
    )
    return await _done(request, state, user, issue_id, f"priority {priority}", session)


@router.post("/issues/{issue_id}/transition")
async def transition(
    request: Request, state: State, session: Db, user: CsrfUser, issue_id: Id
) -> Response:
    user.require(Role.responder, "Moving an issue")
    to = await form_text(request, "to", max_length=20)
    valid = [s.value for s in Status]
    if to not in valid:
        raise PageError(422, f"choose the status to move to ({', '.join(valid)})")
    reason = await form_text(request, "reason", max_length=5_000)
    await service.transition(
        session=session,
        matrix=state.matrix,
        issue_id=issue_id,
        to=Status(to),
        reason=reason,
        actor=user.principal.name,
    )
    return await _done(request, state, user, issue_id, f"moved to {to}", session)


@router.post("/issues/{issue_id}/details")
async def set_details(
    request: Request, state: State, session: Db, user: CsrfUser, issue_id: Id
) -> Response:
    """Workaround, root cause and fix reference: the fields responders fill in as they go."""
    user.require(Role.responder, "Editing workaround, root cause and fix")
    form = await request.form()
    changes: dict[str, Any] = {}
    for name, limit in (("workaround", _MAX_TEXT), ("root_cause", _MAX_TEXT), ("fix_ref", 300)):
        if name in form:
            changes[name] = await form_text(request, name, max_length=limit)
    await service.update_issue(
        session=session,
        matrix=state.matrix,
        issue_id=issue_id,
        changes=changes,
        actor=user.principal.name,
    )
    return await _done(request, state, user, issue_id, "details saved", session)


@router.post("/issues/{issue_id}/comment")
async def comment(
    request: Request, state: State, session: Db, user: CsrfUser, issue_id: Id
) -> Response:
    user.require(Role.support, "Commenting")
    text = await form_text(request, "text", max_length=_MAX_TEXT)
    if text is None:
        raise PageError(422, "write a comment first")
    await service.add_comment(
        session=session, issue_id=issue_id, text=text, actor=user.principal.name
    )
    return await _done(request, state, user, issue_id, "comment added", session)

"""HTTP of the status page: the public documents (no auth) and the management API.

The public paths (``/status``, ``/status/history``, the feeds, ``/api/v2/*.json``) are
answered by `PublicDocs.answer` straight from the in-memory snapshot the status job keeps:
no store access, no routing, an ETag per document and a per-client token bucket. The
console's HTTP protocol asks it first (`hypercare.api.fastpath`, no ASGI at all); the
requests it leaves to the app reach `PublicStatus`, an ASGI layer in front of the app, which
asks it too. A status page is hit hardest during an outage.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query
from starlette.types import ASGIApp, Receive, Scope, Send

from hypercare.api.deps import Db, Responder, State, Viewer
from hypercare.api.fastpath import Answer
from hypercare.api.state import AppState
from hypercare.bounds import MAX_ID, Id
from hypercare.errors import InvalidInput
from hypercare.status import jobs, service
from hypercare.status.jobs import Served, StatusRuntime
from hypercare.status.models import (
    ComponentRead,
    IncidentCreate,
    IncidentRead,
    MaintenanceCreate,
    MaintenanceRead,
    OverrideCreate,
    OverrideRead,
    PreviewRead,
    PreviewRequest,
    TemplateRead,
    TemplateUpdate,
    UpdateCreate,
)
from hypercare.status.rules import (
    SAMPLE_VARIABLES,
    SCENARIOS,
    TEMPLATE_DEFAULTS,
    TemplateError,
    check_template,
    etag_matches,
    impact_of,
    render_template,
    slug,
)
from hypercare.store.base import utcnow

# --- public ------------------------------------------------------------------------------------


def _csp(logo: str | None) -> bytes:
    img = "'self' data:"
    if logo and logo.startswith(("http://", "https://")):
        parts = urlsplit(logo)
        img += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; style-src 'self'; "
        f"img-src {img}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ).encode()


_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"access-control-allow-origin", b"*"),
)
_NOT_ALLOWED = Answer(405, (*_COMMON, (b"allow", b"GET, HEAD"), (b"content-length", b"0")), b"")
_LIMITED_BODY = b'{"error":{"code":"rate_limited","message":"too many requests; retry later"}}'


def _limited(retry_after: int) -> Answer:
    return Answer(
        429,
        (
            *_COMMON,
            (b"content-type", b"application/json"),
            (b"retry-after", str(retry_after).encode()),
            (b"content-length", str(len(_LIMITED_BODY)).encode()),
        ),
        _LIMITED_BODY,
    )


class PublicDocs:
    """The public documents' answers from the snapshot, as whole responses: 200 (GET or
    HEAD), 304 on a matching If-None-Match, 405 for another method, 429 past the per-client
    rate limit. The same answer object is returned for the same response (the documents'
    answers are made once per snapshot), so a server can keep their encoding."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self._rt: StatusRuntime | None = None
        self._csp = _csp(state.config.status.page.logo)
        # per served document: (GET, HEAD, 304); replaced with the snapshot
        self._answers: dict[int, tuple[Served, Answer, Answer, Answer]] = {}
        self._limited: dict[int, Answer] = {}

    def runtime(self) -> StatusRuntime:
        if self._rt is None:
            self._rt = jobs.runtime(self.state)
        return self._rt

    def answer(
        self, method: str, path: str, client: str, if_none_match: bytes | None
    ) -> Answer | None:
        """The response to `method` `path` from `client`, or None: not a public document."""
        if not path.startswith(("/status", "/api/v2/")):
            return None
        rt = self.runtime()
        doc = rt.served.get(path)
        if doc is None:
            return None
        if method not in ("GET", "HEAD"):
            return _NOT_ALLOWED
        wait = rt.limiter.allow(client, time.monotonic())
        if wait is not None:
            after = max(1, round(wait))
            limited = self._limited.get(after)
            if limited is None:
                if len(self._limited) > 64:
                    self._limited.clear()
                limited = self._limited[after] = _limited(after)
            return limited
        found = self._answers.get(id(doc))
        if found is None or found[0] is not doc:
            found = self._answers_of(doc)
        if if_none_match and etag_matches(if_none_match.decode("latin-1"), doc.etag):
            return found[3]
        return found[1] if method == "GET" else found[2]

    def _answers_of(self, doc: Served) -> tuple[Served, Answer, Answer, Answer]:
        headers = [
            *_COMMON,
            (b"etag", doc.etag.encode()),
            (b"cache-control", b"public, max-age=5, must-revalidate"),
            (b"vary", b"Accept-Encoding"),
        ]
        if doc.content_type.startswith("text/html"):
            headers.append((b"content-security-policy", self._csp))
            headers.append((b"x-frame-options", b"DENY"))
        not_modified = Answer(304, (*headers, (b"content-length", b"0")), b"")
        headers.append((b"content-type", doc.content_type.encode()))
        headers.append((b"content-length", str(len(doc.body)).encode()))
        found = (
            doc,
            Answer(200, tuple(headers), doc.body),
            Answer(200, tuple(headers), b""),
            not_modified,
        )
        live = {id(d) for d in self.runtime().served.values()}
        self._answers = {k: v for k, v in self._answers.items() if k in live}
        self._answers[id(doc)] = found
        return found


class PublicStatus:
    """Serves the snapshot's documents (`PublicDocs`); everything else goes to the app.
    The console's HTTP protocol answers most of these requests before they get here
    (`hypercare.api.fastpath`); this layer answers the others the same way."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.docs = PublicDocs(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith(("/status", "/api/v2/"))):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        inm = None
        for k, v in scope["headers"]:
            if k == b"if-none-match":
                inm = v
                break
        answer = self.docs.answer(scope["method"], path, client[0] if client else "-", inm)
        if answer is None:
            await self.app(scope, receive, send)
            return
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": answer.body})


# --- management API ----------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1/status", tags=["status"])


def _known(rt: StatusRuntime, names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in rt.routes]
    if unknown:
        raise InvalidInput(
            f"unknown component {', '.join(map(repr, unknown))} "
            f"(configured: {', '.join(rt.routes) or 'none; add status.components'})"
        )
    return list(dict.fromkeys(names))


@router.get("/components", response_model=list[ComponentRead])
async def list_components(state: State, _: Viewer) -> list[ComponentRead]:
    """Each component: the state shown, the automatic one from traffic, and why."""
    rt = jobs.runtime(state)
    return [
        ComponentRead(
            name=c.name,
            id=slug(c.name),
            group=c.group,
            routes=rt.routes[c.name],
            status=rt.shown[c.name][0].value,
            automatic=rt.tracked[c.name].status.value,
            source=rt.shown[c.name][1],
            reason=rt.reasons.get(c.name, ""),
            since=rt.changed_at.get(c.name),
        )
        for c in rt.config.components
    ]


@router.post("/overrides", response_model=OverrideRead, status_code=201)
async def add_override(
    state: State, session: Db, who: Responder, body: OverrideCreate
) -> OverrideRead:
    """Show a component in a state of your choosing until it expires (or is lifted)."""
    rt = jobs.runtime(state)
    _known(rt, [body.component])
    now = utcnow()
    row = await service.add_override(
        session=session,
        component=body.component,
        status=body.status,
        reason=body.reason,
        expires_at=now + timedelta(minutes=body.expires_in_minutes)
        if body.expires_in_minutes
        else None,
        actor=who.name,
        now=now,
    )
    rt.wake.set()
    return service.override_read(row)


@router.get("/overrides", response_model=list[OverrideRead])
async def list_overrides(session: Db, _: Viewer) -> list[OverrideRead]:
    rows = await service.active_overrides(session=session, now=utcnow())
    return [service.override_read(o) for o in rows]


@router.delete("/overrides/{override_id}", status_code=204)
async def lift_override(state: State, session: Db, _: Responder, override_id: Id) -> None:
    await service.lift_override(session=session, override_id=override_id, now=utcnow())
    jobs.runtime(state).wake.set()


async def _read(session: Db, incident_id: int) -> IncidentRead:
    incident = await service.get_incident(session=session, incident_id=incident_id)
    updates = await service.updates_of(session=session, incident_ids=[incident.id])
    return service.incident_read(incident, updates[incident.id])


async def _template(session: Db, rt: StatusRuntime, scenario: str) -> str:
    """The scenario's template as stored now (an API edit wins over the file)."""
    stored = await service.stored_templates(session=session)
    return stored.get(scenario) or rt.config.template(scenario)


async def _body(
    session: Db,
    rt: StatusRuntime,
    text: str | None,
    scenario: str | None,
    components: list[str],
    impact: str,
    workaround: str | None,
    next_update: int | None,
    started: datetime | None = None,
) -> str:
    if text:
        return text
    if scenario is None:
        raise InvalidInput("give `body` (the text to publish) or `scenario` (a template)")
    variables = jobs.variables(rt, components, started or utcnow(), impact, workaround, next_update)
    try:
        return render_template(await _template(session, rt, scenario), variables)
    except TemplateError as exc:
        raise InvalidInput(f"template {scenario!r}: {exc}") from None


@router.post("/incidents", response_model=IncidentRead, status_code=201)
async def create_incident(
    state: State, session: Db, who: Responder, body: IncidentCreate
) -> IncidentRead:
    """Open a public incident, usually from an internal issue (`issue_id`): the issue's
    timeline records it; nothing of the issue itself is published."""
    rt = jobs.runtime(state)
    components = _known(rt, body.components)
    impact = body.impact or impact_of(rt.shown[c][0] for c in components)
    if body.impact is None and impact == "none":
        impact = "minor"
    text = await _body(
        session,
        rt,
        body.body,
        body.scenario,
        components,
        impact,
        body.workaround,
        body.next_update_in_minutes,
    )
    now = utcnow()
    affected = [
        {
            "code": slug(c),
            "name": c,
            "old_status": rt.shown[c][0].value,
            "new_status": rt.shown[c][0].value,
        }
        for c in components
    ]
    if body.publish:
        await service.close_drafts(session=session, components=components, now=now)
    incident = await service.create_incident(
        session=session,
        name=body.name,
        status=body.status,
        impact=impact,
        components=components,
        body=text,
        issue_id=body.issue_id,
        publish=body.publish,
        actor=who.name,
        now=now,
        affected=affected,
    )
    rt.wake.set()
    return await _read(session, incident.id)


@router.get("/incidents", response_model=list[IncidentRead])
async def list_incidents(
    session: Db,
    _: Viewer,
    issue_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    unresolved: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[IncidentRead]:
    """Public incidents, drafts included (this is the responders' view)."""
    rows = await service.list_incidents(
        session=session, published_only=False, unresolved=unresolved, limit=limit, issue_id=issue_id
    )
    updates = await service.updates_of(session=session, incident_ids=[i.id for i in rows])
    return [service.incident_read(i, updates[i.id]) for i in rows]


@router.get("/incidents/{incident_id}", response_model=IncidentRead)
async def get_incident(session: Db, _: Viewer, incident_id: Id) -> IncidentRead:
    return await _read(session, incident_id)


@router.post("/incidents/{incident_id}/updates", response_model=IncidentRead, status_code=201)
async def add_update(
    state: State, session: Db, who: Responder, incident_id: Id, body: UpdateCreate
) -> IncidentRead:
    """Post an update. `affected` sets components' shown state (an override that lasts until
    the incident is resolved); resolving lifts the overrides of its components."""
    rt = jobs.runtime(state)
    incident = await service.get_incident(session=session, incident_id=incident_id)
    components = list(incident.components)
    changes = {a.component: a.status for a in body.affected}
    _known(rt, list(changes))
    now = utcnow()
    affected = []
    for name, status in changes.items():
        affected.append(
            {
                "code": slug(name),
                "name": name,
                "old_status": rt.shown[name][0].value,
                "new_status": status,
            }
        )
        await service.add_override(
            session=session,
            component=name,
            status=status,
            reason=f"public incident {incident.id}",
            expires_at=None,
            actor=who.name,
            now=now,
        )
        if name not in components:
            components.append(name)
    if body.status in ("resolved", "postmortem"):
        await service.lift_overrides_of(
            session=session, components=[c for c in components if c not in changes], now=now
        )
    text = await _body(
        session,
        rt,
        body.body,
        body.scenario,
        components,
        body.impact or incident.impact,
        body.workaround,
        body.next_update_in_minutes,
        incident.created_at,
    )
    await service.add_update(
        session=session,
        incident_id=incident_id,
        status=body.status,
        body=text,
        actor=who.name,
        now=now,
        impact=body.impact,
        affected=affected,
        publish=body.publish,
    )
    rt.wake.set()
    return await _read(session, incident_id)


@router.post("/maintenances", response_model=MaintenanceRead, status_code=201)
async def add_maintenance(
    state: State, session: Db, who: Responder, body: MaintenanceCreate
) -> MaintenanceRead:
    """Schedule a maintenance window: its components show under_maintenance during it,
    and (by default) detection findings on their routes are expected: no issue, no page."""
    rt = jobs.runtime(state)
    now = utcnow()
    row = await service.add_maintenance(
        session=session,
        name=body.name,
        body=body.body,
        components=_known(rt, body.components),
        start=body.scheduled_for,
        end=body.scheduled_until,
        actor=who.name,
        now=now,
    )
    rt.wake.set()
    return service.maintenance_read(row, now)


@router.get("/maintenances", response_model=list[MaintenanceRead])
async def list_maintenances(session: Db, _: Viewer) -> list[MaintenanceRead]:
    now = utcnow()
    rows = await service.list_maintenances(session=session, since=now - timedelta(days=90))
    return [service.maintenance_read(m, now) for m in rows]


@router.post("/maintenances/{maintenance_id}/complete", response_model=MaintenanceRead)
async def complete_maintenance(
    state: State, session: Db, _: Responder, maintenance_id: Id
) -> MaintenanceRead:
    now = utcnow()
    row = await service.complete_maintenance(
        session=session, maintenance_id=maintenance_id, now=now
    )
    jobs.runtime(state).wake.set()
    return service.maintenance_read(row, now)


@router.get("/templates", response_model=list[TemplateRead])
async def list_templates(state: State, session: Db, _: Viewer) -> list[TemplateRead]:
    stored = await service.stored_templates(session=session)
    cfg = state.config.status.templates
    out = []
    for s in SCENARIOS:
        if s in stored:
            out.append(TemplateRead(scenario=s, body=stored[s], source="api"))
        elif s in cfg:
            out.append(TemplateRead(scenario=s, body=cfg[s], source="config"))
        else:
            out.append(TemplateRead(scenario=s, body=TEMPLATE_DEFAULTS[s], source="default"))
    return out


def _scenario(scenario: str) -> str:
    if scenario not in SCENARIOS:
        raise InvalidInput(f"unknown scenario {scenario!r} (use one of {', '.join(SCENARIOS)})")
    return scenario


@router.put("/templates/{scenario}", response_model=TemplateRead)
async def put_template(
    state: State, session: Db, who: Responder, scenario: str, body: TemplateUpdate
) -> TemplateRead:
    """Replace a scenario's template. A syntax error or an unknown variable is refused with
    its line."""
    _scenario(scenario)
    try:
        check_template(body.body)
    except TemplateError as exc:
        raise InvalidInput(f"template {scenario!r}: {exc}", details={"line": exc.line}) from None
    await service.put_template(
        session=session, scenario=scenario, body=body.body, actor=who.name, now=utcnow()
    )
    jobs.runtime(state).wake.set()
    return TemplateRead(scenario=scenario, body=body.body, source="api")


@router.delete("/templates/{scenario}", status_code=204)
async def reset_template(state: State, session: Db, _: Responder, scenario: str) -> None:
    """Back to the configured (or built-in) template."""
    await service.delete_template(session=session, scenario=_scenario(scenario))
    jobs.runtime(state).wake.set()


@router.post("/templates/preview", response_model=PreviewRead)
async def preview(state: State, session: Db, _: Viewer, body: PreviewRequest) -> PreviewRead:
    """Render a template (given, or a scenario's) with example values and yours."""
    rt = jobs.runtime(state)
    if body.body is None and body.scenario is None:
        raise InvalidInput("give `body` (a template) or `scenario`")
    text = body.body if body.body is not None else await _template(session, rt, str(body.scenario))
    try:
        return PreviewRead(text=render_template(text, {**SAMPLE_VARIABLES, **body.variables}))
    except TemplateError as exc:
        raise InvalidInput(f"template: {exc}", details={"line": exc.line}) from None

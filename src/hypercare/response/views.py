"""HTTP for response: the notification log, replay, acknowledgement (API and signed link)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from hypercare.api.deps import Admin, Db, Responder, State, Viewer, bearer_token
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role, allows
from hypercare.bounds import Id, Offset
from hypercare.errors import InvalidInput, NotFound, Unauthenticated
from hypercare.response import ical, jobs, oncall, rules, service
from hypercare.response.channels import (
    Notifiers,
    Outbound,
    Outcome,
    check_public_url,
    new_client,
    pin_public,
    recipient,
)
from hypercare.response.config import ChannelConfig, ScheduleConfig
from hypercare.response.models import (
    AcknowledgeRequest,
    ChannelRead,
    ContactRead,
    DeliveryPage,
    DeliveryRead,
    OnCallRead,
    OverrideCreate,
    OverrideRead,
    PersonRead,
    ScheduleOnCall,
    ScheduleRead,
    ShiftRead,
    TestRequest,
    TestResult,
)
from hypercare.response.roster import schedule_of
from hypercare.response.rules import DeliveryState
from hypercare.store.base import utcnow
from hypercare.triage import service as triage_service
from hypercare.triage.models import IssueRead

router = APIRouter(prefix="/api/v1", tags=["response"])
# the one-click acknowledgement pages: public (the signed token is the credential)
links = APIRouter(include_in_schema=False)


@router.get("/issues/{issue_id}/notifications", response_model=list[DeliveryRead])
async def issue_notifications(
    session: Db,
    _: Viewer,
    issue_id: Id,
    limit: Annotated[int, Query(ge=1, le=1000, description="the newest this many")] = 200,
) -> list[DeliveryRead]:
    """The deliveries made for the issue, oldest first: channel, recipient, state, attempts
    and times."""
    rows = await service.list_deliveries(session=session, issue_id=issue_id, limit=limit)
    return [service.to_read(d) for d in rows]


@router.get("/notifications", response_model=DeliveryPage)
async def notifications(
    session: Db,
    _: Admin,
    event: Annotated[str | None, Query(max_length=30, description="e.g. digest")] = None,
    state: Annotated[DeliveryState | None, Query(description="e.g. dead")] = None,
    no_issue: Annotated[bool, Query(description="only those of no issue")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> DeliveryPage:
    """Every delivery, newest first: those of no issue too (stakeholder digests, status
    page subscribers' notices), which no issue's log lists. Admin: recipients include
    subscribers' addresses."""
    rows, total = await service.find_deliveries(
        session=session, event=event, state=state, no_issue=no_issue, limit=limit, offset=offset
    )
    return DeliveryPage(items=[service.to_read(d) for d in rows], total=total)


@router.post("/notifications/{delivery_id}/replay", response_model=DeliveryRead)
async def replay_notification(
    state: State, session: Db, who: Responder, delivery_id: Id
) -> DeliveryRead:
    """Send a delivery again, whatever its state (a pending one is refused: it is on its way)."""
    delivery = await service.replay(
        session=session, delivery_id=delivery_id, actor=who.name, now=utcnow()
    )
    jobs.nudge(state)
    return service.to_read(delivery)


@router.post("/issues/{issue_id}/acknowledge", response_model=IssueRead)
async def acknowledge_issue(
    state: State,
    session: Db,
    who: Responder,
    issue_id: Id,
    body: AcknowledgeRequest | None = None,
) -> IssueRead:
    """Stamp `acknowledged_at` (the first time; later calls change nothing) and record it on
    the timeline; this is what stops escalation."""
    issue, _ = await service.acknowledge(
        session=session,
        issue_id=issue_id,
        actor=who.name,
        via="api",
        note=body.note if body else None,
        now=utcnow(),
        config=state.config.response,
    )
    return triage_service.to_read(issue, state.matrix)


@router.get("/response/channels", response_model=list[ChannelRead])
async def channels(state: State, session: Db, _: Admin) -> list[ChannelRead]:
    """The configured channels. A webhook channel whose config gives no `secret` signs with
    one Hypercare generated: it is shown here in clear once, the first time it is read."""
    cfg = state.config.response
    out = []
    for ch in cfg.channels:
        read = ChannelRead(
            name=ch.name, type=ch.type, recipient=recipient(ch), signed=ch.type == "webhook"
        )
        if ch.type == "webhook" and not ch.secret:
            key = await service.signing_key(session=session, config=cfg)
            secret, revealed = await service.reveal_secret(
                session=session, channel=ch.name, key=key, now=utcnow()
            )
            read = read.model_copy(update={"secret": secret, "secret_revealed_at": revealed})
        out.append(read)
    return out


@router.post("/response/test", response_model=TestResult)
async def send_test(state: State, _: Admin, body: TestRequest) -> TestResult:
    """Send a test message now (not a delivery: nothing is stored or retried)."""
    cfg = state.config.response
    rt = jobs.runtime(state)
    if (body.channel is None) == (body.url is None):
        raise InvalidInput("give either `channel` (a configured name) or `url`")
    if body.channel is not None:
        channel = cfg.channel(body.channel)
        if channel is None:
            known = ", ".join(c.name for c in cfg.channels) or "none configured"
            raise NotFound(f"no channel {body.channel!r} (configured: {known})")
        secret = rt.secrets.get(channel.name) or channel.secret
    else:
        url = body.url or ""
        refusal = await check_public_url(url, cfg.allow_private, rt.resolve)
        if refusal:
            raise InvalidInput(f"will not call {url!r}: {refusal}", details={"field": "url"})
        channel = ChannelConfig(name="test", type="webhook", url=url)
        secret = None
    base = jobs.base_url(state)
    message = {
        "event": "test",
        "entry_id": 0,
        "issue_id": 0,
        "title": "Hypercare test message",
        "priority": "P4",
        "status": "new",
        "labels": [],
        "text": "A test from Hypercare: this channel is reachable.",
        "at": utcnow().isoformat(),
        "issue_url": f"{base}/",
        "ack_url": f"{base}/",
    }
    outbound = Outbound(
        delivery_id=0,
        channel=channel,
        message=message,
        idempotency_key=uuid.uuid4().hex,
        secret=secret,
    )
    if body.url is not None:
        # sent to the addresses the guard checks now (DNS may have changed since above)
        pinned = await pin_public(outbound, cfg.allow_private, rt.resolve)
        if isinstance(pinned, Outcome):
            return TestResult(ok=False, status=None, error=pinned.error)
        outbound = pinned
    if rt.notifiers is not None:
        outcome = await rt.notifiers.for_channel(channel).send(outbound)
    else:
        async with new_client() as client:
            outcome = await Notifiers.standard(client).for_channel(channel).send(outbound)
    return TestResult(ok=outcome.ok, status=outcome.status, error=outcome.error)


# --- the signed acknowledgement link ------------------------------------------------------

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}"
    "button{font-size:1rem;padding:.6rem 1.4rem;cursor:pointer}.muted{color:#555}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# no scripts at all; the only form posts back to this origin
LINK_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)} · Hypercare</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=LINK_HEADERS)


_REFUSALS = {
    rules.AckRefusal.malformed: "This acknowledgement link is not valid. Copy the whole link "
    "from the message, or acknowledge the issue in the console.",
    rules.AckRefusal.tampered: "This acknowledgement link is not valid: it was changed or "
    "belongs to another Hypercare. Acknowledge the issue in the console instead.",
    rules.AckRefusal.expired: "This acknowledgement link has expired. Acknowledge the issue "
    "in the console instead.",
}


async def _verify(state: State, session: Db, token: str) -> rules.AckClaim | HTMLResponse:
    rt = jobs.runtime(state)
    key = rt.key or await service.signing_key(session=session, config=state.config.response)
    claim = rules.verify_ack(key, token, int(time.time()))
    if isinstance(claim, rules.AckRefusal):
        return _page("Link not valid", f"<p>{escape(_REFUSALS[claim])}</p>", status=400)
    return claim


@links.get("/ack/{token}", response_class=HTMLResponse)
async def ack_page(state: State, session: Db, token: str) -> HTMLResponse:
    """The confirmation page. Opening the link changes nothing (mail scanners fetch links);
    only the button's POST acknowledges."""
    claim = await _verify(state, session, token)
    if isinstance(claim, HTMLResponse):
        return claim
    try:
        issue = await triage_service.get_issue(session=session, issue_id=claim.issue_id)
    except NotFound:
        return _page("Issue not found", "<p>This issue no longer exists.</p>", status=404)
    done = (
        f"<p class='muted'>Already acknowledged at {escape(issue.acknowledged_at.isoformat())}.</p>"
        if issue.acknowledged_at
        else ""
    )
    return _page(
        f"Acknowledge #{issue.id}?",
        f"<p><strong>[{escape(issue.priority)}] {escape(issue.title)}</strong></p>{done}"
        f"<form method='post' action='/ack/{escape(token)}'>"
        "<button type='submit'>Acknowledge</button></form>"
        f"<p class='muted'><a href='/issues/{issue.id}'>Open the issue</a></p>",
    )


@links.post("/ack/{token}", response_class=HTMLResponse)
async def ack_confirm(request: Request, state: State, session: Db, token: str) -> HTMLResponse:
    # the token in the path is the credential; a browser's cross-site POST is still refused
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site not in (None, "same-origin", "none"):
        return _page("Not acknowledged", "<p>Use the button on the page itself.</p>", 403)
    claim = await _verify(state, session, token)
    if isinstance(claim, HTMLResponse):
        return claim
    try:
        used = await service.use_ack_link(session=session, claim=claim, now=utcnow())
    except NotFound:
        return _page("Issue not found", "<p>This issue no longer exists.</p>", status=404)
    if used is None:
        return _page(
            "Link already used",
            "<p>This link has been used already; each one works once. "
            f"<a href='/issues/{claim.issue_id}'>Open the issue</a>.</p>",
            status=409,
        )
    issue, fresh = used
    text = "Acknowledged. Escalation stops here." if fresh else "It was already acknowledged."
    return _page(
        f"#{issue.id} acknowledged",
        f"<p>{escape(text)}</p><p><a href='/issues/{issue.id}'>Open the issue</a></p>",
    )


# --- on call: who, when, overrides, calendars ----------------------------------------------

FEED_HORIZON_PAST = timedelta(days=14)
FEED_HORIZON_AHEAD = timedelta(days=90)


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise InvalidInput(
            f"`at` is not an ISO 8601 time: {value[:60]!r} (e.g. 2026-03-08T07:00:00Z)",
            details={"field": "at"},
        ) from None
    if at.tzinfo is None:
        raise InvalidInput(
            "`at` needs a UTC offset or Z (e.g. 2026-03-08T07:00:00Z)", details={"field": "at"}
        )
    return at.astimezone(UTC)


def _shift_read(shift: oncall.Shift) -> ShiftRead:
    return ShiftRead(
        schedule=shift.schedule,
        person=shift.person,
        start=shift.start,
        end=shift.end,
        layer=shift.layer,
    )


def _schedule(state: State, name: str) -> ScheduleConfig:
    found = state.config.response.schedule(name)
    if found is None:
        known = ", ".join(s.name for s in state.config.response.schedules) or "none defined"
        raise NotFound(f"no schedule named {name!r} (known: {known})")
    return found


async def _feed_key(state: State, session: Db, kind: str, name: str) -> str:
    """The secret part of a calendar URL: calendar apps cannot send a bearer token, so the
    feed's URL carries a key derived from the signing key (valid for that feed only)."""
    rt = jobs.runtime(state)
    key = rt.key or await service.signing_key(session=session, config=state.config.response)
    mac = hmac.new(key, f"ical:{kind}:{name}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


@router.get("/oncall", response_model=OnCallRead)
async def who_is_on_call(
    state: State,
    session: Db,
    _: Viewer,
    at: str | None = Query(default=None, max_length=64),
    count: int = Query(default=5, ge=1, le=50),
) -> OnCallRead:
    """Who is on call on each schedule at `at` (default: now), and the next shifts (the
    current one first, whole)."""
    instant = _parse_at(at)
    horizon = timedelta(days=60)
    overrides = await service.overrides_by_schedule(
        session=session,
        start=instant - timedelta(days=35),
        end=instant + horizon,
        config=state.config.response,
    )
    out = []
    for cfg in state.config.response.schedules:
        sched = schedule_of(cfg)
        mine = overrides.get(cfg.name, [])
        now = oncall.on_call(sched, mine, instant)
        upcoming = oncall.next_shifts(sched, mine, instant, count=count, horizon=horizon)
        out.append(
            ScheduleOnCall(
                schedule=cfg.name,
                time_zone=cfg.time_zone,
                on_call=_shift_read(now) if now else None,
                next=[_shift_read(s) for s in upcoming],
            )
        )
    return OnCallRead(at=instant, schedules=out)


@router.get("/oncall/schedules", response_model=list[ScheduleRead])
async def list_schedules(state: State, session: Db, _: Viewer) -> list[ScheduleRead]:
    """The configured schedules with their layers, API overrides still to come, and the
    path of each one's calendar feed."""
    now = utcnow()
    rows = await service.list_overrides(session=session, start=now)
    out = []
    for cfg in state.config.response.schedules:
        key = await _feed_key(state, session, "schedule", cfg.name)
        out.append(
            ScheduleRead(
                name=cfg.name,
                time_zone=cfg.time_zone,
                description=cfg.description,
                layers=[layer.model_dump(mode="json", by_alias=True) for layer in cfg.layers],
                overrides=[service.override_read(r) for r in rows if r.schedule == cfg.name],
                ical_path=f"/api/v1/oncall/schedules/{cfg.name}.ics?key={key}",
            )
        )
    return out


@router.get("/oncall/schedules/{name}/shifts", response_model=list[ShiftRead])
async def schedule_shifts(
    state: State,
    session: Db,
    _: Viewer,
    name: str,
    start: str | None = Query(default=None, max_length=64),
    days: int = Query(default=14, ge=1, le=92),
) -> list[ShiftRead]:
    """The final schedule from `start` (default: now) for `days` days: the console's
    timeline."""
    cfg = _schedule(state, name)
    begin = _parse_at(start)
    end = begin + timedelta(days=days)
    rows = await service.list_overrides(session=session, schedule=name, start=begin, end=end)
    found = oncall.shifts(schedule_of(cfg), [service.override_value(r) for r in rows], begin, end)
    return [_shift_read(s) for s in found]


@router.get("/oncall/schedules/{name}/overrides", response_model=list[OverrideRead])
async def schedule_overrides(state: State, session: Db, _: Viewer, name: str) -> list[OverrideRead]:
    _schedule(state, name)
    rows = await service.list_overrides(session=session, schedule=name, start=utcnow())
    return [service.override_read(r) for r in rows]


@router.post("/oncall/schedules/{name}/overrides", response_model=OverrideRead, status_code=201)
async def create_override(
    state: State, session: Db, who: Responder, name: str, body: OverrideCreate
) -> OverrideRead:
    """Put `person` on call on schedule `name` from `start` to `end`, over every layer."""
    row = await service.create_override(
        session=session,
        config=state.config.response,
        schedule=name,
        body=body,
        actor=who.name,
        now=utcnow(),
    )
    return service.override_read(row)


@router.delete("/oncall/overrides/{override_id}", response_model=OverrideRead)
async def delete_override(session: Db, _: Responder, override_id: Id) -> OverrideRead:
    row = await service.delete_override(session=session, override_id=override_id)
    return service.override_read(row)


@router.get("/people", response_model=list[PersonRead])
async def list_people(state: State, session: Db, _: Viewer) -> list[PersonRead]:
    """The configured people, which schedules they are on, their shifts in the next two
    weeks and the path of their calendar feed. A contact's own URL is shown by host only."""
    cfg = state.config.response
    now = utcnow()
    end = now + timedelta(days=14)
    overrides = await service.overrides_by_schedule(
        session=session, start=now, end=end, config=state.config.response
    )
    schedules = [schedule_of(s) for s in cfg.schedules]
    out = []
    for person in cfg.people:
        on = sorted(
            {s.name for s in cfg.schedules for ly in s.layers if person.name in ly.members}
            | {n for n, ovs in overrides.items() for o in ovs if o.person == person.name}
        )
        upcoming = oncall.person_shifts(schedules, overrides, person.name, now, end)
        key = await _feed_key(state, session, "person", person.name)
        out.append(
            PersonRead(
                name=person.name,
                full_name=person.full_name,
                email=person.email,
                time_zone=person.time_zone,
                contacts=[
                    ContactRead(
                        type=c.type,
                        channel=c.channel,
                        target=c.target,
                        url_host=urlsplit(c.url).hostname if c.url else None,
                    )
                    for c in person.contacts
                ],
                token=person.token,
                schedules=on,
                on_call=[_shift_read(s) for s in upcoming],
                ical_path=f"/api/v1/oncall/people/{person.name}.ics?key={key}",
            )
        )
    return out


@router.get("/response/policies", response_model=list[dict[str, Any]])
async def list_policies(state: State, _: Viewer) -> list[dict[str, Any]]:
    """The escalation policies as configured (steps, waits, repeats, matrix levels)."""
    return [p.model_dump(mode="json") for p in state.config.response.policies]


_ICS = "text/calendar; charset=utf-8"


async def _feed_allowed(request: Request, state: State, session: Db, kind: str, name: str) -> None:
    given = request.query_params.get("key")
    if given is not None:
        if hmac.compare_digest(given, await _feed_key(state, session, kind, name)):
            return
        raise Unauthenticated("this calendar key is not valid for this feed")
    principal = await auth_service.authenticate(session=session, token=bearer_token(request))
    if not allows(principal.role, Role.viewer):
        raise Unauthenticated("a viewer token is needed")


def feed_shifts(
    schedule: oncall.Schedule, overrides: list[oncall.Override], start: datetime, end: datetime
) -> list[oncall.Shift]:
    """Shifts for a feed: the first one whole (not cut at the window's start), so its UID,
    made from its start, stays the same from one fetch to the next."""
    first = oncall.on_call(schedule, overrides, start)
    return oncall.shifts(schedule, overrides, first.start if first else start, end)


@router.get("/oncall/schedules/{name}.ics", response_class=Response)
async def schedule_calendar(request: Request, state: State, session: Db, name: str) -> Response:
    """The schedule's shifts from two weeks ago to three months ahead, as iCalendar.
    Authenticated by a bearer token or by the `key` from `GET /oncall/schedules`."""
    cfg = _schedule(state, name)
    await _feed_allowed(request, state, session, "schedule", name)
    now = utcnow()
    start, end = now - FEED_HORIZON_PAST, now + FEED_HORIZON_AHEAD
    rows = await service.list_overrides(
        session=session, schedule=name, start=start - timedelta(days=35), end=end
    )
    found = feed_shifts(schedule_of(cfg), [service.override_value(r) for r in rows], start, end)
    base = jobs.base_url(state)
    body = ical.calendar(
        f"On call: {name}",
        found,
        now=now,
        host=urlsplit(base).hostname or "hypercare",
        url=f"{base}/oncall",
    )
    return Response(body, media_type=_ICS)


@router.get("/oncall/people/{name}.ics", response_class=Response)
async def person_calendar(request: Request, state: State, session: Db, name: str) -> Response:
    """A person's shifts across every schedule, as iCalendar (same window and auth as the
    schedule feed)."""
    cfg = state.config.response
    if cfg.person(name) is None:
        raise NotFound(f"no person named {name!r} in response.people")
    await _feed_allowed(request, state, session, "person", name)
    now = utcnow()
    start, end = now - FEED_HORIZON_PAST, now + FEED_HORIZON_AHEAD
    overrides = await service.overrides_by_schedule(
        session=session, start=start - timedelta(days=35), end=end, config=state.config.response
    )
    found = sorted(
        (
            shift
            for sch in cfg.schedules
            for shift in feed_shifts(schedule_of(sch), overrides.get(sch.name, []), start, end)
            if shift.person == name
        ),
        key=lambda s: (s.start, s.schedule),
    )
    base = jobs.base_url(state)
    body = ical.calendar(
        f"On call: {name}",
        found,
        now=now,
        host=urlsplit(base).hostname or "hypercare",
        url=f"{base}/oncall",
    )
    return Response(body, media_type=_ICS)

"""On call in the console: who is on call now (an overview tile), each schedule's next two
weeks as a timeline with its overrides, people and escalation policies. Reads and the
override actions go through `hypercare.response` exactly as the API does."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.auth.rules import Role, allows
from hypercare.bounds import Id
from hypercare.errors import DomainError
from hypercare.response import oncall, service
from hypercare.response.models import OverrideCreate
from hypercare.response.roster import schedule_of
from hypercare.store.base import utcnow
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser, CsrfUser, PageError, form_text
from hypercare.web.registry import ConsolePart, NavItem, OverviewSlot

router = APIRouter(include_in_schema=False)

TIMELINE_DAYS = 14


async def _now_on_call(session: AsyncSession, state: AppState) -> dict[str, Any]:
    cfg = state.config.response
    now = utcnow()
    overrides = await service.overrides_by_schedule(
        session=session,
        start=now - timedelta(days=35),
        end=now + timedelta(days=1),
        config=state.config.response,
    )
    rows = []
    for sch in cfg.schedules:
        rows.append(
            {
                "schedule": sch.name,
                "shift": oncall.on_call(schedule_of(sch), overrides.get(sch.name, []), now),
            }
        )
    return {"schedules": rows}


def _bars(shifts: list[oncall.Shift], start: datetime, end: datetime) -> list[dict[str, Any]]:
    span = (end - start).total_seconds()
    people = sorted({s.person for s in shifts})
    return [
        {
            "shift": s,
            "left": round((s.start - start).total_seconds() / span * 100, 3),
            "width": round((s.end - s.start).total_seconds() / span * 100, 3),
            "hue": (people.index(s.person) * 67) % 360,
        }
        for s in shifts
    ]


@router.get("/oncall")
async def oncall_page(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    cfg = state.config.response
    now = utcnow()
    start = now.replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(days=TIMELINE_DAYS)
    overrides = await service.overrides_by_schedule(
        session=session, start=start - timedelta(days=35), end=end, config=state.config.response
    )
    rows = await service.list_overrides(session=session, start=now)
    schedules = []
    for sch in cfg.schedules:
        value = schedule_of(sch)
        mine = overrides.get(sch.name, [])
        shifts = oncall.shifts(value, mine, start, end)
        schedules.append(
            {
                "config": sch,
                "now": oncall.on_call(value, mine, now),
                "shifts": shifts,
                "bars": _bars(shifts, start, end),
                "overrides": [service.override_read(r) for r in rows if r.schedule == sch.name],
                "days": [
                    (start + timedelta(days=d)).astimezone(ZoneInfo(sch.time_zone))
                    for d in range(TIMELINE_DAYS)
                ],
            }
        )
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        schedules=schedules,
        people=cfg.people,
        policies=cfg.policies,
        timeline_start=start,
        timeline_end=end,
        can_override=allows(user.principal.role, Role.responder),
    )
    return console.render(request, "oncall.html", ctx)


@router.get("/overview/oncall")
async def oncall_tile(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    console = console_of(request)
    ctx = console.context(
        request, user.principal, user.csrf, data=await _now_on_call(session, state)
    )
    return console.render(request, "_oncall_now.html", ctx)


def _local(value: str | None, zone: ZoneInfo, field: str) -> datetime:
    """A browser's datetime-local value, read in the schedule's zone."""
    if not value:
        raise PageError(422, f"{field} is required")
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise PageError(422, f"{field} is not a date and time: {value[:40]!r}") from None
    if naive.tzinfo is not None:
        return naive
    return oncall.resolve(naive, zone)


@router.post("/oncall/overrides")
async def add_override(request: Request, state: State, session: Db, user: CsrfUser) -> Response:
    user.require(Role.responder, "Adding an override")
    name = await form_text(request, "schedule", max_length=80) or ""
    sch = state.config.response.schedule(name)
    if sch is None:
        raise PageError(404, f"no schedule named {name!r}")
    zone = ZoneInfo(sch.time_zone)
    try:
        body = OverrideCreate(
            person=await form_text(request, "person", max_length=80) or "",
            start=_local(await form_text(request, "start", max_length=40), zone, "start"),
            end=_local(await form_text(request, "end", max_length=40), zone, "end"),
            note=await form_text(request, "note", max_length=500),
        )
        await service.create_override(
            session=session,
            config=state.config.response,
            schedule=name,
            body=body,
            actor=user.principal.name,
            now=utcnow(),
        )
    except ValidationError as exc:
        raise PageError(422, str(exc.errors()[0]["msg"])) from exc
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    return RedirectResponse(f"/oncall#schedule-{name}", status_code=303)


@router.post("/oncall/overrides/{override_id}/delete")
async def remove_override(session: Db, user: CsrfUser, override_id: Id) -> Response:
    user.require(Role.responder, "Removing an override")
    try:
        row = await service.delete_override(session=session, override_id=override_id)
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    return RedirectResponse(f"/oncall#schedule-{row.schedule}", status_code=303)


PART = ConsolePart(
    name="oncall",
    router=router,
    nav=(NavItem(label="On call", href="/oncall", section="oncall", order=35, key="c"),),
    slots=(
        OverviewSlot(
            region="oncall",
            title="On call now",
            template="_oncall_now.html",
            load=_now_on_call,
        ),
    ),
)

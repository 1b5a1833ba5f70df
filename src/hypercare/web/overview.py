"""The overview page: the launch at a glance, refreshed live."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.store.base import utcnow
from hypercare.triage import service
from hypercare.web import queries
from hypercare.web.console import Console, console_of
from hypercare.web.deps import ConsoleUser
from hypercare.web.registry import OverviewSlot

router = APIRouter(include_in_schema=False)

URGENT_ROWS = 12
ACTIVITY_ROWS = 15
FLOW_HOURS = 48


async def _live_context(session: AsyncSession, state: AppState) -> dict[str, Any]:
    levels = [lv.level for lv in state.matrix.levels]
    counts = await queries.open_counts(session=session, levels=levels)
    urgent = await queries.urgent_open(session=session, limit=URGENT_ROWS)
    return {
        "counts": counts,
        "levels": state.matrix.by_name,
        "urgent": [service.to_read(i, state.matrix) for i in urgent],
        "activity": await queries.recent_activity(session=session, limit=ACTIVITY_ROWS),
        "marker": await queries.change_marker(session=session),
        "flow": await queries.hourly_flow(session=session, now=utcnow(), hours=FLOW_HOURS),
    }


async def _slots(
    console: Console, session: AsyncSession, state: AppState
) -> dict[str, list[tuple[OverviewSlot, dict[str, Any] | None]]]:
    """Each region's slots with their data; None for a deferred slot (it has an `href`)."""
    filled: dict[str, list[tuple[OverviewSlot, dict[str, Any] | None]]] = {}
    for region, slots in console.slots.items():
        filled[region] = [
            (slot, None if slot.href else await slot.load(session, state)) for slot in slots
        ]
    return filled


@router.get("/")
async def overview(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        slots=await _slots(console, session, state),
        **await _live_context(session, state),
    )
    return console.render(request, "overview.html", ctx)


@router.get("/overview/live")
async def overview_live(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    """The live part of the overview, swapped in when something changed."""
    console = console_of(request)
    ctx = console.context(request, user.principal, user.csrf, **await _live_context(session, state))
    return console.render(request, "_overview_live.html", ctx)

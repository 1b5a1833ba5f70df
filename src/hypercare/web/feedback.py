"""Feedback in the console: latest signals on the overview, the feedback page (user
reports, NPS/CSAT, dead letters with replay) and the shift handover. The data and the
actions go through the same functions the API uses."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.auth.rules import Role, allows
from hypercare.bounds import Id
from hypercare.feedback import handover as handover_service
from hypercare.feedback import service
from hypercare.feedback.models import Handover
from hypercare.feedback.views import signals as signal_views
from hypercare.feedback.views import team as team_views
from hypercare.feedback.views import user as user_views
from hypercare.store.base import utcnow
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser, CsrfUser, PageError, form_text
from hypercare.web.registry import ConsolePart, NavItem, OverviewSlot

router = APIRouter(include_in_schema=False)

LATEST_SIGNALS = 12
USER_ROWS = 50
REJECTED_ROWS = 30
HANDOVERS_SHOWN = 5
# open issues listed per priority on the handover page (the saved handover keeps them all)
HANDOVER_ISSUE_ROWS = 25


async def _latest(session: AsyncSession, state: AppState) -> dict[str, Any]:
    rows, _ = await service.list_signals(
        session=session, filters=service.SignalFilter(), limit=LATEST_SIGNALS, offset=0
    )
    return {"signals": rows}


@router.get("/overview/signals")
async def latest_signals(
    request: Request, state: State, session: Db, user: ConsoleUser
) -> Response:
    """The overview's latest signals, re-fetched when the live stream says something moved."""
    console = console_of(request)
    ctx = console.context(request, user.principal, user.csrf, data=await _latest(session, state))
    return console.render(request, "_latest_signals.html", ctx)


@router.get("/feedback")
async def feedback_page(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    reports, total = await service.list_signals(
        session=session, filters=service.SignalFilter(kind=("user",)), limit=USER_ROWS, offset=0
    )
    end = utcnow()
    scores = await user_views.feedback_scores(
        session, user.principal, from_=end - timedelta(days=7), to=end, step="6h"
    )
    x = [int(b.start.timestamp()) for b in scores.buckets]
    chart = {
        "id": "scores-data",
        "title": "NPS and CSAT (%), 6-hour buckets, last 7 days",
        "data": {
            "x": x,
            "unit": "NPS, CSAT %",
            "series": [
                {"label": "NPS", "color": "#175cd3", "values": [b.nps for b in scores.buckets]},
                {
                    "label": "CSAT %",
                    "color": "#067647",
                    "values": [b.csat for b in scores.buckets],
                },
            ],
        },
    }
    can_replay = allows(user.principal.role, Role.responder)
    rejected, rejected_total = await service.list_rejected(
        session=session, include_replayed=False, limit=REJECTED_ROWS, offset=0
    )
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        reports=reports,
        reports_total=total,
        scores=scores,
        chart=chart,
        rejected=[service.rejected_read(r, body_limit=2000) for r in rejected],
        rejected_total=rejected_total,
        can_replay=can_replay,
    )
    return console.render(request, "feedback.html", ctx)


@router.post("/feedback/rejected/{delivery_id}/replay")
async def replay(
    request: Request, state: State, session: Db, user: CsrfUser, delivery_id: Id
) -> Response:
    user.require(Role.responder, "Replaying rejected intake")
    result = await signal_views.replay(state, session, user.principal, delivery_id)
    if result.status_code >= 400:
        # still rejected: the API keeps the new reason, so answer without rolling back
        try:
            message = str(json.loads(bytes(result.body))["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = "the delivery was rejected again"
        console = console_of(request)
        ctx = console.context(
            request, user.principal, user.csrf, status=result.status_code, message=message
        )
        return console.render(request, "error.html", ctx, status=result.status_code)
    return RedirectResponse("/feedback#rejected", status_code=303)


# --- handover ------------------------------------------------------------------------------


def _lines(value: str | None) -> list[str]:
    return [line.strip() for line in (value or "").splitlines() if line.strip()][:200]


async def _saved(session: AsyncSession) -> list[Any]:
    rows, _ = await service.list_signals(
        session=session,
        filters=service.SignalFilter(kind=("team",), source=("handover",)),
        limit=HANDOVERS_SHOWN,
        offset=0,
    )
    return rows


@router.get("/handover")
async def handover_page(request: Request, state: State, session: Db, user: ConsoleUser) -> Response:
    draft = await handover_service.draft(
        session=session, levels=[lv.level for lv in state.matrix.levels]
    )
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        draft=draft,
        saved=await _saved(session),
        issue_rows=HANDOVER_ISSUE_ROWS,
    )
    return console.render(request, "handover.html", ctx)


@router.post("/handover")
async def save_handover(request: Request, state: State, session: Db, user: CsrfUser) -> Response:
    user.require(Role.support, "Saving a handover")
    draft = await handover_service.draft(
        session=session, levels=[lv.level for lv in state.matrix.levels]
    )
    try:
        body = Handover(
            shift=await form_text(request, "shift", max_length=120) or "",
            open_issues=draft.open_issues,
            investigations=_lines(await form_text(request, "investigations", max_length=20_000)),
            mitigations=_lines(await form_text(request, "mitigations", max_length=20_000)),
            watch=_lines(await form_text(request, "watch", max_length=20_000)),
            notes=await form_text(request, "notes", max_length=20_000) or "",
        )
    except ValidationError as exc:
        raise PageError(422, str(exc.errors()[0]["msg"])) from exc
    await team_views.post_handover(state, session, user.principal, body, request)
    return RedirectResponse("/handover#saved", status_code=303)


PART = ConsolePart(
    name="feedback",
    router=router,
    nav=(
        NavItem(label="Feedback", href="/feedback", section="feedback", order=30, key="f"),
        NavItem(label="Handover", href="/handover", section="handover", order=40, key="h"),
    ),
    slots=(
        OverviewSlot(
            region="latest_signals",
            title="Latest signals",
            template="_latest_signals.html",
            load=_latest,
        ),
    ),
)

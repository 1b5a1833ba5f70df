"""Response in the console: an issue's notification log with replay, and the acknowledge
button. The actions call `hypercare.response.service` exactly as the API does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.bounds import Id
from hypercare.response import jobs, service
from hypercare.store.base import utcnow
from hypercare.triage.models import IssueRead
from hypercare.web.console import is_htmx
from hypercare.web.deps import CsrfUser
from hypercare.web.registry import ConsolePart, IssuePanel

router = APIRouter(include_in_schema=False)

PANEL_ROWS = 50


async def _log(session: AsyncSession, state: AppState, issue: IssueRead) -> dict[str, Any]:
    rows = await service.list_deliveries(session=session, issue_id=issue.id, limit=PANEL_ROWS)
    return {"deliveries": [service.to_read(d) for d in rows]}


def _back(request: Request, issue_id: int | None, anchor: str, event: str = "") -> Response:
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    if issue_id is not None:
        where = f"/issues/{issue_id}#{anchor}"
    else:  # a digest's delivery is listed on the digest page
        where = "/digest#sent" if event == "digest" else "/"
    return RedirectResponse(where, status_code=303)


@router.post("/issues/{issue_id}/acknowledge")
async def acknowledge(
    request: Request, state: State, session: Db, user: CsrfUser, issue_id: Id
) -> Response:
    user.require(Role.responder, "Acknowledging an issue")
    await service.acknowledge(
        session=session,
        issue_id=issue_id,
        actor=user.principal.name,
        via="console",
        note=None,
        now=utcnow(),
        config=state.config.response,
    )
    return _back(request, issue_id, "notifications")


@router.post("/notifications/{delivery_id}/replay")
async def replay(
    request: Request, state: State, session: Db, user: CsrfUser, delivery_id: Id
) -> Response:
    user.require(Role.responder, "Replaying a notification")
    delivery = await service.replay(
        session=session, delivery_id=delivery_id, actor=user.principal.name, now=utcnow()
    )
    jobs.nudge(state)
    return _back(request, delivery.issue_id, "notifications", delivery.event)


PART = ConsolePart(
    name="response",
    router=router,
    issue_panels=(
        IssuePanel(
            region="response",
            title="Notifications",
            template="_notifications.html",
            load=_log,
        ),
    ),
)

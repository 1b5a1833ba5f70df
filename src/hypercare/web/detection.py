"""Detection in the console: an issue's linked signals (score and reasons), the responder
corrections (split off, unlink, merge) and the validation watches. The actions call
`detection.service` exactly as the API does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.bounds import Id
from hypercare.detection import service
from hypercare.feedback import service as feedback
from hypercare.triage.models import IssueRead
from hypercare.web.console import is_htmx
from hypercare.web.deps import CsrfUser, PageError, form_text
from hypercare.web.registry import ConsolePart, IssuePanel

router = APIRouter(include_in_schema=False)

SIGNAL_ROWS = 50


async def _linked(session: AsyncSession, state: AppState, issue: IssueRead) -> dict[str, Any]:
    signals, groups = await feedback.issue_signals(
        session=session, issue_id=issue.id, limit=SIGNAL_ROWS
    )
    links = await service.links_of(session=session, issue_id=issue.id)
    watches = await service.watches_of(session=session, issue_id=issue.id)
    return {
        "signals": [(s, links.get(s.id)) for s in signals],
        "groups": groups,
        "watches": watches,
    }


def _back(issue_id: int | None, anchor: str = "linked-signals") -> str:
    return f"/issues/{issue_id}#{anchor}" if issue_id else "/"


@router.post("/signals/{signal_id}/split")
async def split(
    request: Request, state: State, session: Db, user: CsrfUser, signal_id: Id
) -> Response:
    user.require(Role.responder, "Splitting a signal off")
    title = await form_text(request, "title", max_length=300)
    issue = await service.split(
        session=session,
        matrix=state.matrix,
        signal_id=signal_id,
        title=title,
        actor=user.principal.name,
    )
    await session.flush()
    return RedirectResponse(f"/issues/{issue.id}", status_code=303)


@router.post("/signals/{signal_id}/unlink")
async def unlink(request: Request, session: Db, user: CsrfUser, signal_id: Id) -> Response:
    user.require(Role.responder, "Unlinking a signal")
    back = await form_text(request, "issue", max_length=20)
    await service.unlink(session=session, signal_id=signal_id, actor=user.principal.name)
    return RedirectResponse(_back(int(back) if back and back.isdigit() else None), status_code=303)


@router.post("/issues/{issue_id}/merge")
async def merge(
    request: Request, state: State, session: Db, user: CsrfUser, issue_id: Id
) -> Response:
    user.require(Role.responder, "Merging issues")
    into = await form_text(request, "into", max_length=20)
    into = (into or "").lstrip("#")
    if not into.isdigit():
        raise PageError(422, "give the number of the issue to merge into")
    target = await service.merge(
        session=session,
        matrix=state.matrix,
        source_id=issue_id,
        into_id=int(into),
        actor=user.principal.name,
    )
    if is_htmx(request):  # the form answers in place; on success, go to the merged issue
        return Response(status_code=200, headers={"HX-Redirect": f"/issues/{target.id}"})
    return RedirectResponse(f"/issues/{target.id}", status_code=303)


PART = ConsolePart(
    name="detection",
    router=router,
    issue_panels=(
        IssuePanel(
            region="linked_signals",
            title="Linked signals",
            template="_linked_signals.html",
            load=_linked,
        ),
    ),
)

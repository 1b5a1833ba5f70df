"""HTTP for the issue tracker, under /api/v1."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hypercare.api.deps import Db, Responder, State, Support, Viewer
from hypercare.bounds import Id, Offset
from hypercare.errors import InvalidInput
from hypercare.triage import service
from hypercare.triage.detail import IssueDetailParts, assemble
from hypercare.triage.models import (
    CommentCreate,
    IssueCreate,
    IssuePage,
    IssueRead,
    IssueUpdate,
    MatrixLevelRead,
    MatrixRead,
    TimelineRead,
    TransitionRequest,
)
from hypercare.triage.rules import OPEN, SlaState, Status

router = APIRouter(prefix="/api/v1", tags=["issues"])


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else ()


@router.get("/issues", response_model=IssuePage)
async def list_issues(
    state: State,
    session: Db,
    _: Viewer,
    status: Annotated[str | None, Query(description="comma-separated statuses, or 'open'")] = None,
    priority: Annotated[str | None, Query(description="comma-separated, e.g. P1,P2")] = None,
    component: str | None = None,
    assignee: str | None = None,
    sla_state: Annotated[str | None, Query(description="ok, at_risk, breached")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="text in title or description")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> IssuePage:
    statuses = _csv(status)
    if "open" in statuses:
        statuses = tuple(s for s in statuses if s != "open") + tuple(s.value for s in OPEN)
    _check_values("status", statuses, [s.value for s in Status])
    _check_values("sla_state", _csv(sla_state), [s.value for s in SlaState])
    _check_values("priority", _csv(priority), list(state.matrix.by_name))
    filters = service.IssueFilter(
        status=statuses,
        priority=_csv(priority),
        component=component,
        assignee=assignee,
        sla_state=_csv(sla_state),
        q=q,
    )
    issues, total = await service.list_issues(
        session=session, filters=filters, limit=limit, offset=offset
    )
    return IssuePage(
        items=[service.to_read(i, state.matrix) for i in issues],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post("/issues", response_model=IssueRead, status_code=201)
async def create_issue(state: State, session: Db, who: Support, body: IssueCreate) -> IssueRead:
    issue = await service.create_issue(
        session=session, matrix=state.matrix, data=body, actor=who.name
    )
    return service.to_read(issue, state.matrix)


@router.patch("/issues/{issue_id}", response_model=IssueRead)
async def update_issue(
    state: State, session: Db, who: Responder, issue_id: Id, body: IssueUpdate
) -> IssueRead:
    issue = await service.update_issue(
        session=session,
        matrix=state.matrix,
        issue_id=issue_id,
        changes=body.model_dump(exclude_unset=True),
        actor=who.name,
    )
    return service.to_read(issue, state.matrix)


@router.post("/issues/{issue_id}/transitions", response_model=IssueRead)
async def transition_issue(
    state: State, session: Db, who: Responder, issue_id: Id, body: TransitionRequest
) -> IssueRead:
    issue = await service.transition(
        session=session,
        matrix=state.matrix,
        issue_id=issue_id,
        to=body.to,
        reason=body.reason,
        actor=who.name,
    )
    return service.to_read(issue, state.matrix)


@router.post("/issues/{issue_id}/comments", response_model=TimelineRead, status_code=201)
async def comment(session: Db, who: Support, issue_id: Id, body: CommentCreate) -> TimelineRead:
    entry = await service.add_comment(
        session=session, issue_id=issue_id, text=body.text, actor=who.name
    )
    return TimelineRead.model_validate(entry, from_attributes=True)


@router.get("/issues/{issue_id}/timeline", response_model=list[TimelineRead])
async def issue_timeline(session: Db, _: Viewer, issue_id: Id) -> list[TimelineRead]:
    entries = await service.timeline(session=session, issue_id=issue_id)
    return [TimelineRead.model_validate(e, from_attributes=True) for e in entries]


@router.get("/matrix", response_model=MatrixRead, tags=["matrix"])
async def matrix(state: State, _: Viewer) -> MatrixRead:
    m = state.matrix
    return MatrixRead(
        levels=[
            MatrixLevelRead(
                level=lv.level,
                name=lv.name,
                description=lv.description,
                impact=lv.impact,
                target_seconds=lv.target.total_seconds() if lv.target else None,
                target=_human(lv.target.total_seconds()) if lv.target else "post-hypercare",
                escalation=list(lv.escalation),
            )
            for lv in m.levels
        ],
        at_risk_fraction=m.at_risk_fraction,
        default_priority=m.default_priority,
    )


def detail_router(parts: IssueDetailParts) -> APIRouter:
    """GET /issues/{issue_id}: the issue with the sections of the installed domains."""
    detail = APIRouter(prefix="/api/v1", tags=["issues"])

    @detail.get("/issues/{issue_id}", response_model=parts.model)
    async def get_issue(state: State, session: Db, _: Viewer, issue_id: Id) -> IssueRead:
        """The issue with its signals, why each is linked, and the validation of its fix."""
        issue = await service.get_issue(session=session, issue_id=issue_id)
        read = service.to_read(issue, state.matrix)
        return await assemble(session=session, read=read, parts=parts)

    return detail


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _check_values(field: str, given: tuple[str, ...], valid: list[str]) -> None:
    bad = [v for v in given if v not in valid]
    if bad:
        raise InvalidInput(
            f"unknown {field} {', '.join(map(repr, bad))}; valid: {', '.join(valid)}",
            details={"field": field, "valid": valid},
        )

"""HTTP for post-incident reviews, runbooks and knowledge search, under /api/v1."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import PlainTextResponse

from hypercare.api.deps import Db, Responder, State, Viewer
from hypercare.bounds import Id, Offset
from hypercare.errors import NotFound
from hypercare.review import rules, service
from hypercare.review.jobs import gateway_routes
from hypercare.review.models import (
    ActionItemCreate,
    IssueBlastRadius,
    IssueKnowledge,
    ReviewPage,
    ReviewRead,
    ReviewTransition,
    ReviewUpdate,
    RunbookCreate,
    RunbookRead,
    RunbookWrite,
    SearchResults,
)
from hypercare.review.rules import ReviewState
from hypercare.triage import service as triage

router = APIRouter(prefix="/api/v1", tags=["reviews"])

RunbookName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")]


@router.get("/reviews", response_model=ReviewPage)
async def list_reviews(
    session: Db,
    _: Viewer,
    state: ReviewState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> ReviewPage:
    rows, total = await service.list_reviews(
        session=session, state=state.value if state else None, limit=limit, offset=offset
    )
    return ReviewPage(items=[service.summary_of(r, i) for r, i in rows], total=total)


@router.get("/issues/{issue_id}/blast-radius", response_model=IssueBlastRadius)
async def issue_blast_radius(
    state: State, session: Db, _: Viewer, issue_id: Id
) -> IssueBlastRadius:
    """Failed calls on the issue's routes, affected consumers (API keys) with counts, and
    the first and last failing call; bounded by `review.max_blocks` call blocks."""
    issue = await triage.get_issue(session=session, issue_id=issue_id)
    found = await service.blast_radius(
        session=session,
        issue=issue,
        config=state.config.review,
        gateway_routes=gateway_routes(state),
    )
    return IssueBlastRadius(issue_id=issue.id, **found)


@router.get("/reviews/{review_id}", response_model=ReviewRead)
async def get_review(session: Db, _: Viewer, review_id: Id) -> ReviewRead:
    review = await service.get_review(session=session, review_id=review_id)
    return await service.to_read(session=session, review=review)


@router.get(
    "/reviews/{review_id}/markdown",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}},
)
async def review_markdown(session: Db, _: Viewer, review_id: Id) -> Response:
    """The review as one Markdown document (to paste into a wiki or a pull request)."""
    review = await service.get_review(session=session, review_id=review_id)
    read = await service.to_read(session=session, review=review)
    return Response(
        rules.to_markdown(read.model_dump(mode="json")),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="review-{review.id}.md"'},
    )


@router.patch("/reviews/{review_id}", response_model=ReviewRead)
async def update_review(
    session: Db, who: Responder, review_id: Id, body: ReviewUpdate
) -> ReviewRead:
    review = await service.update_review(
        session=session,
        review_id=review_id,
        changes=body.model_dump(exclude_unset=True),
        actor=who.name,
    )
    return await service.to_read(session=session, review=review)


@router.post("/reviews/{review_id}/transitions", response_model=ReviewRead)
async def transition_review(
    session: Db, who: Responder, review_id: Id, body: ReviewTransition
) -> ReviewRead:
    """draft → in_review → published (in_review → draft and published → in_review go back).
    Publishing needs the root cause written."""
    review = await service.transition_review(
        session=session, review_id=review_id, to=body.to, actor=who.name
    )
    return await service.to_read(session=session, review=review)


@router.post("/reviews/{review_id}/action-items", response_model=ReviewRead, status_code=201)
async def add_action_item(
    state: State, session: Db, who: Responder, review_id: Id, body: ActionItemCreate
) -> ReviewRead:
    """Open the action item as an issue (P4 unless told) linked to the review."""
    await service.add_action_item(
        session=session, matrix=state.matrix, review_id=review_id, data=body, actor=who.name
    )
    review = await service.get_review(session=session, review_id=review_id)
    return await service.to_read(session=session, review=review)


@router.get("/issues/{issue_id}/review", response_model=ReviewRead)
async def issue_review(session: Db, _: Viewer, issue_id: Id) -> ReviewRead:
    await triage.get_issue(session=session, issue_id=issue_id)
    review = await service.review_of(session=session, issue_id=issue_id)
    if review is None:
        raise NotFound(
            f"issue {issue_id} has no review yet (P1/P2 issues get one when resolved; "
            f"POST /api/v1/issues/{issue_id}/review drafts one now)"
        )
    return await service.to_read(session=session, review=review)


@router.post("/issues/{issue_id}/review", response_model=ReviewRead, status_code=201)
async def draft_issue_review(state: State, session: Db, who: Responder, issue_id: Id) -> ReviewRead:
    """Draft the issue's review from data now (any priority), or refresh a draft's data."""
    issue = await triage.get_issue(session=session, issue_id=issue_id)
    review = await service.draft_review(
        session=session,
        issue=issue,
        config=state.config.review,
        gateway_routes=gateway_routes(state),
        actor=who.name,
    )
    return await service.to_read(session=session, review=review)


@router.get("/issues/{issue_id}/knowledge", response_model=IssueKnowledge)
async def issue_knowledge(state: State, session: Db, _: Viewer, issue_id: Id) -> IssueKnowledge:
    """Runbooks matching the issue (component, route, or a linked signal's detection rule)
    and workarounds of resolved issues of the same component."""
    issue = await triage.get_issue(session=session, issue_id=issue_id)
    return await service.knowledge_for(
        session=session, issue=issue, gateway_routes=gateway_routes(state)
    )


@router.get("/runbooks", response_model=list[RunbookRead], tags=["runbooks"])
async def list_runbooks(session: Db, _: Viewer) -> list[RunbookRead]:
    return [service.runbook_read(rb) for rb in await service.list_runbooks(session=session)]


@router.get("/runbooks/{name}", response_model=RunbookRead, tags=["runbooks"])
async def get_runbook(session: Db, _: Viewer, name: RunbookName) -> RunbookRead:
    return service.runbook_read(await service.get_runbook(session=session, name=name))


@router.post("/runbooks", response_model=RunbookRead, status_code=201, tags=["runbooks"])
async def create_runbook(session: Db, who: Responder, body: RunbookCreate) -> RunbookRead:
    rb = await service.save_runbook(
        session=session, name=body.name, data=body, actor=who.name, create=True
    )
    return service.runbook_read(rb)


@router.put("/runbooks/{name}", response_model=RunbookRead, tags=["runbooks"])
async def put_runbook(
    session: Db, who: Responder, name: RunbookName, body: RunbookWrite
) -> RunbookRead:
    rb = await service.save_runbook(session=session, name=name, data=body, actor=who.name)
    return service.runbook_read(rb)


@router.delete("/runbooks/{name}", status_code=204, tags=["runbooks"])
async def delete_runbook(session: Db, _: Responder, name: RunbookName) -> Response:
    await service.delete_runbook(session=session, name=name)
    return Response(status_code=204)


@router.get("/knowledge/search", response_model=SearchResults, tags=["runbooks"])
async def search_knowledge(
    session: Db,
    _: Viewer,
    q: Annotated[str, Query(min_length=1, max_length=200, description="words to find")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchResults:
    """Full-text search over runbooks and the workarounds of resolved issues."""
    hits = await service.search(session=session, q=q, limit=limit)
    return SearchResults(query=q, items=hits)

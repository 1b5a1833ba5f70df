"""Post-incident reviews, runbooks and knowledge search in the console, and the issue
page's "Runbooks and past workarounds" panel. Every read and action goes through
`hypercare.review.service` exactly as the API does."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup, escape
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db, State
from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.bounds import Id, Offset
from hypercare.errors import DomainError
from hypercare.review import rules, service
from hypercare.review.jobs import gateway_routes
from hypercare.review.models import ActionItemCreate, ReviewUpdate, RunbookCreate, RunbookWrite
from hypercare.review.rules import ReviewState
from hypercare.triage import service as triage
from hypercare.triage.models import IssueRead
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser, CsrfUser, PageError, form_text
from hypercare.web.registry import ConsolePart, IssuePanel, NavItem

router = APIRouter(include_in_schema=False)

RunbookName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")]
_REVIEW_FIELDS = (
    "title",
    "summary",
    "root_cause",
    "contributing_factors",
    "went_well",
    "went_badly",
)
PAGE = 50


def highlight(snippet: str) -> Markup:
    """A search snippet with its ``[[match]]`` marks as <mark>, everything else escaped."""
    out = []
    for i, part in enumerate(re.split(r"\[\[|\]\]", snippet)):
        out.append(f"<mark>{escape(part)}</mark>" if i % 2 else str(escape(part)))
    return Markup("".join(out))


async def _knowledge(session: AsyncSession, state: AppState, issue: IssueRead) -> dict[str, Any]:
    found = await triage.get_issue(session=session, issue_id=issue.id)
    knowledge = await service.knowledge_for(
        session=session, issue=found, gateway_routes=gateway_routes(state)
    )
    review = await service.review_of(session=session, issue_id=issue.id)
    return {"knowledge": knowledge, "review": review}


async def _blast(session: AsyncSession, state: AppState, issue: IssueRead) -> dict[str, Any]:
    found = await triage.get_issue(session=session, issue_id=issue.id)
    return await service.blast_radius(
        session=session,
        issue=found,
        config=state.config.review,
        gateway_routes=gateway_routes(state),
    )


@router.get("/reviews")
async def reviews_page(
    request: Request,
    session: Db,
    user: ConsoleUser,
    state: ReviewState | None = None,
    offset: Offset = 0,
) -> Response:
    rows, total = await service.list_reviews(
        session=session, state=state.value if state else None, limit=PAGE, offset=offset
    )
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        reviews=[service.summary_of(r, i) for r, i in rows],
        total=total,
        offset=offset,
        page_size=PAGE,
        state=state.value if state else "",
        states=[s.value for s in ReviewState],
    )
    return console.render(request, "reviews.html", ctx)


@router.get("/reviews/{review_id}")
async def review_page(request: Request, session: Db, user: ConsoleUser, review_id: Id) -> Response:
    review = await service.get_review(session=session, review_id=review_id)
    read = await service.to_read(session=session, review=review)
    console = console_of(request)
    ctx = console.context(request, user.principal, user.csrf, review=read, facts=read.facts)
    return console.render(request, "review.html", ctx)


@router.get("/reviews/{review_id}/export.md")
async def review_export(session: Db, user: ConsoleUser, review_id: Id) -> Response:
    review = await service.get_review(session=session, review_id=review_id)
    read = await service.to_read(session=session, review=review)
    return Response(
        rules.to_markdown(read.model_dump(mode="json")),
        media_type="text/markdown; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="review-{review.id}.md"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/reviews/{review_id}/edit")
async def review_edit(request: Request, session: Db, user: CsrfUser, review_id: Id) -> Response:
    user.require(Role.responder, "Editing a review")
    values: dict[str, Any] = {}
    for name in _REVIEW_FIELDS:
        value = (await request.form()).get(name)
        if isinstance(value, str):
            values[name] = value.strip()
    try:
        changes = ReviewUpdate(**values).model_dump(exclude_unset=True)
        await service.update_review(
            session=session, review_id=review_id, changes=changes, actor=user.principal.name
        )
    except ValidationError as exc:
        raise PageError(422, str(exc.errors()[0]["msg"])) from exc
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    return RedirectResponse(f"/reviews/{review_id}", status_code=303)


@router.post("/reviews/{review_id}/transition")
async def review_transition(
    request: Request, session: Db, user: CsrfUser, review_id: Id
) -> Response:
    user.require(Role.responder, "Moving a review")
    to = await form_text(request, "to", max_length=20) or ""
    if to not in {s.value for s in ReviewState}:
        raise PageError(422, f"unknown review state {to!r}")
    try:
        await service.transition_review(
            session=session, review_id=review_id, to=ReviewState(to), actor=user.principal.name
        )
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    return RedirectResponse(f"/reviews/{review_id}", status_code=303)


@router.post("/reviews/{review_id}/action-items")
async def review_action_item(
    request: Request, state: State, session: Db, user: CsrfUser, review_id: Id
) -> Response:
    user.require(Role.responder, "Adding an action item")
    try:
        body = ActionItemCreate(
            title=await form_text(request, "title", max_length=300) or "",
            assignee=await form_text(request, "assignee", max_length=120),
        )
        await service.add_action_item(
            session=session,
            matrix=state.matrix,
            review_id=review_id,
            data=body,
            actor=user.principal.name,
        )
    except ValidationError as exc:
        raise PageError(422, "an action item needs a title") from exc
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    return RedirectResponse(f"/reviews/{review_id}#action-items", status_code=303)


@router.post("/issues/{issue_id}/review")
async def draft_review(state: State, session: Db, user: CsrfUser, issue_id: Id) -> Response:
    user.require(Role.responder, "Drafting a review")
    issue = await triage.get_issue(session=session, issue_id=issue_id)
    review = await service.draft_review(
        session=session,
        issue=issue,
        config=state.config.review,
        gateway_routes=gateway_routes(state),
        actor=user.principal.name,
    )
    return RedirectResponse(f"/reviews/{review.id}", status_code=303)


@router.get("/runbooks")
async def runbooks_page(request: Request, session: Db, user: ConsoleUser) -> Response:
    console = console_of(request)
    runbooks = [service.runbook_read(rb) for rb in await service.list_runbooks(session=session)]
    ctx = console.context(request, user.principal, user.csrf, runbooks=runbooks)
    return console.render(request, "runbooks.html", ctx)


async def _runbook_form(request: Request) -> dict[str, Any]:
    def listed(value: str | None) -> list[str]:
        return [v.strip() for v in (value or "").split(",") if v.strip()]

    return {
        "title": await form_text(request, "title", max_length=200) or "",
        "body": await form_text(request, "body", max_length=64 * 1024) or "",
        "components": listed(await form_text(request, "components", max_length=2000)),
        "routes": listed(await form_text(request, "routes", max_length=2000)),
        "rules": listed(await form_text(request, "rules", max_length=2000)),
    }


@router.post("/runbooks")
async def runbook_create(request: Request, session: Db, user: CsrfUser) -> Response:
    user.require(Role.responder, "Adding a runbook")
    try:
        body = RunbookCreate(
            name=await form_text(request, "name", max_length=80) or "",
            **await _runbook_form(request),
        )
        await service.save_runbook(
            session=session, name=body.name, data=body, actor=user.principal.name, create=True
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PageError(422, f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    return RedirectResponse(f"/runbooks#runbook-{body.name}", status_code=303)


@router.post("/runbooks/{name}")
async def runbook_update(
    request: Request, session: Db, user: CsrfUser, name: RunbookName
) -> Response:
    user.require(Role.responder, "Editing a runbook")
    try:
        body = RunbookWrite(**await _runbook_form(request))
        await service.save_runbook(session=session, name=name, data=body, actor=user.principal.name)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PageError(422, f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    return RedirectResponse(f"/runbooks#runbook-{name}", status_code=303)


@router.post("/runbooks/{name}/delete")
async def runbook_delete(session: Db, user: CsrfUser, name: RunbookName) -> Response:
    user.require(Role.responder, "Deleting a runbook")
    try:
        await service.delete_runbook(session=session, name=name)
    except DomainError as exc:
        raise PageError(exc.status, exc.message) from exc
    return RedirectResponse("/runbooks", status_code=303)


@router.get("/knowledge")
async def knowledge_page(
    request: Request,
    session: Db,
    user: ConsoleUser,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    hits = await service.search(session=session, q=q, limit=50) if q.strip() else []
    console = console_of(request)
    ctx = console.context(request, user.principal, user.csrf, q=q, hits=hits, highlight=highlight)
    return console.render(request, "knowledge.html", ctx)


PART = ConsolePart(
    name="reviews",
    router=router,
    nav=(
        NavItem(label="Reviews", href="/reviews", section="reviews", order=40, key="r"),
        NavItem(label="Runbooks", href="/runbooks", section="runbooks", order=42, key="b"),
    ),
    issue_panels=(
        IssuePanel(
            region="knowledge",
            title="Blast radius",
            template="_blast_radius.html",
            load=_blast,
        ),
        IssuePanel(
            region="knowledge",
            title="Runbooks and past workarounds",
            template="_knowledge.html",
            load=_knowledge,
        ),
    ),
)

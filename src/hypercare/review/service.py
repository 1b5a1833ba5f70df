"""Review, runbook and knowledge-base reads and writes. Functions take a keyword-only
session and never commit (the request or the job owns the transaction)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal_column, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import Conflict, InvalidInput, NotFound
from hypercare.feedback.models import Signal
from hypercare.gateway.records import UPSTREAM_ERRORS
from hypercare.review import rules
from hypercare.review.config import ReviewConfig, RunbookConfig
from hypercare.review.models import (
    ActionItem,
    ActionItemCreate,
    ActionItemRead,
    IssueKnowledge,
    KnowledgeDoc,
    Review,
    ReviewCursor,
    ReviewRead,
    ReviewSummary,
    Runbook,
    RunbookRead,
    RunbookWrite,
    SearchHit,
    Workaround,
)
from hypercare.review.rules import ReviewState
from hypercare.store.base import utcnow
from hypercare.telemetry.calls import load_blocks
from hypercare.telemetry.models import TelemetrySegmentRoute
from hypercare.telemetry.segments import F_CONSUMER, F_ERROR, F_ROUTE, F_STATUS, F_TIME
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, IssueCreate, TimelineEntry
from hypercare.triage.rules import Matrix, Status

CURSOR = "timeline"
DONE = (Status.resolved.value, Status.verified.value, Status.closed.value)
BLOCKS_PER_READ = 50


# --- the outbox cursor --------------------------------------------------------------------


async def get_cursor(*, session: AsyncSession) -> int | None:
    row = await session.get(ReviewCursor, CURSOR)
    return None if row is None else row.value


async def set_cursor(*, session: AsyncSession, value: int) -> None:
    row = await session.get(ReviewCursor, CURSOR)
    if row is None:
        session.add(ReviewCursor(name=CURSOR, value=value))
    else:
        row.value = value


async def newest_entry_id(*, session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(TimelineEntry.id))) or 0)


async def entries_after(
    *, session: AsyncSession, after: int, also: Iterable[int], limit: int
) -> list[tuple[int, int, str, dict[str, Any]]]:
    """(id, issue id, kind, data) of committed timeline entries past `after`, and of the
    ids in `also` the cursor still waits for, oldest first."""
    cols = (TimelineEntry.id, TimelineEntry.issue_id, TimelineEntry.kind, TimelineEntry.data)
    rows = list(
        await session.execute(
            select(*cols).where(TimelineEntry.id > after).order_by(TimelineEntry.id).limit(limit)
        )
    )
    waiting = sorted(set(also))[:1000]
    if waiting:
        rows += list(await session.execute(select(*cols).where(TimelineEntry.id.in_(waiting))))
    out = {int(r[0]): (int(r[0]), int(r[1]), str(r[2]), dict(r[3] or {})) for r in rows}
    return [out[k] for k in sorted(out)]


# --- drafting -----------------------------------------------------------------------------


def route_names(
    issue: Issue,
    signal_routes: Iterable[str],
    gateway_routes: Sequence[tuple[str, str | None, str | None]],
) -> list[str]:
    """The gateway routes an issue is about: its own route (a name, or a path of one), the
    routes of its signals, and every route tagged with its component. `gateway_routes` are
    (name, path, component) triples."""
    by_path = {path: name for name, path, _ in gateway_routes if path}
    found = {r for r in signal_routes if r}
    if issue.route:
        found.add(by_path.get(issue.route, issue.route))
    if issue.component:
        found.update(name for name, _, comp in gateway_routes if comp == issue.component)
    return sorted(found)


async def failing_calls(
    *, session: AsyncSession, routes: Sequence[str], start: float, end: float, max_blocks: int
) -> tuple[Counter[rules.Bucket], int, bool]:
    """The failing calls on `routes` in [start, end], counted per `rules.Bucket`, with how
    many call blocks were read and whether the scan was complete (False: it stopped at
    `max_blocks`)."""
    found: Counter[rules.Bucket] = Counter()
    if not routes:
        return found, 0, True
    part = TelemetrySegmentRoute
    ids = list(
        await session.scalars(
            select(part.batch_id)
            .where(
                part.route.in_(list(routes)),
                part.last_ts >= start,
                part.first_ts <= end,
                # only blocks whose part of these routes holds a failing call (a 5xx, or an
                # upstream error kind): the summaries spare reading the healthy ones
                or_(
                    part.statuses.contains("\n5", autoescape=True),
                    *(part.errors.contains(f"\n{e}\n", autoescape=True) for e in UPSTREAM_ERRORS),
                ),
            )
            .distinct()
            .order_by(part.batch_id)
            .limit(max_blocks + 1)
        )
    )
    complete = len(ids) <= max_blocks
    ids = ids[:max_blocks]
    wanted = set(routes)
    for i in range(0, len(ids), BLOCKS_PER_READ):
        blocks = await load_blocks(session, ids[i : i + BLOCKS_PER_READ])
        for rows in blocks.values():
            rules.tally(
                (
                    rules.Call(
                        float(row[F_TIME]),
                        str(row[F_ROUTE]),
                        str(row[F_CONSUMER] or ""),
                        int(row[F_STATUS]),
                        str(row[F_ERROR] or ""),
                    )
                    for row in rows
                    if row[F_ROUTE] in wanted and start <= row[F_TIME] <= end
                ),
                into=found,
            )
    return found, len(ids), complete


async def draft_facts(
    *,
    session: AsyncSession,
    issue: Issue,
    config: ReviewConfig,
    gateway_routes: Sequence[tuple[str, str | None, str | None]],
) -> dict[str, Any]:
    """Read what a review states from data (signals, timeline, failing calls) and let
    `rules.draft_facts` decide."""
    signals = list(
        await session.scalars(select(Signal).where(Signal.issue_id == issue.id).limit(1000))
    )
    facts = [
        rules.SignalFacts(
            s.id,
            s.kind,
            s.source,
            s.occurred_at,
            s.summary,
            s.route,
            (s.labels or {}).get("rule"),
        )
        for s in signals
    ]
    events = [
        rules.EventFacts(e.at, e.actor, e.kind, e.text)
        for e in await session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.issue_id == issue.id)
            .order_by(TimelineEntry.id)
            .limit(2000)
        )
    ]
    routes = route_names(issue, (s.route for s in signals if s.route), gateway_routes)
    starts = [s.occurred_at for s in signals] + [
        t for t in (issue.impact_started_at, issue.detected_at, issue.created_at) if t
    ]
    start = min(starts).timestamp() - config.lookback.total_seconds()
    end = (issue.resolved_at or utcnow()).timestamp()
    failures, blocks, complete = await failing_calls(
        session=session, routes=routes, start=start, end=end, max_blocks=config.max_blocks
    )
    return rules.draft_facts(
        issue=rules.IssueFacts(
            id=issue.id,
            title=issue.title,
            priority=issue.priority,
            component=issue.component,
            impact_started_at=issue.impact_started_at,
            detected_at=issue.detected_at,
            acknowledged_at=issue.acknowledged_at,
            mitigated_at=issue.mitigated_at,
            resolved_at=issue.resolved_at,
        ),
        signals=facts,
        events=events,
        failures=failures,
        routes=routes,
        gap=config.gap.total_seconds(),
        scanned_blocks=blocks,
        complete=complete,
    )


BLAST_KEYS = ("routes", "impact", "blast_radius", "telemetry")


async def blast_radius(
    *,
    session: AsyncSession,
    issue: Issue,
    config: ReviewConfig,
    gateway_routes: Sequence[tuple[str, str | None, str | None]],
) -> dict[str, Any]:
    """The issue's blast radius as of now, from the call records: its routes, the first
    and last failing call, failed calls by consumer (API key), route and status, and
    whether the scan read every call block (`config.max_blocks` bounds it). The same
    reading a review draft states (`draft_facts`), without storing anything."""
    facts = await draft_facts(
        session=session, issue=issue, config=config, gateway_routes=gateway_routes
    )
    return {key: facts.get(key) for key in BLAST_KEYS}


async def review_of(*, session: AsyncSession, issue_id: int) -> Review | None:
    found: Review | None = await session.scalar(select(Review).where(Review.issue_id == issue_id))
    return found


async def draft_review(
    *,
    session: AsyncSession,
    issue: Issue,
    config: ReviewConfig,
    gateway_routes: Sequence[tuple[str, str | None, str | None]],
    actor: str,
    now: datetime | None = None,
) -> Review:
    """Draft the review of `issue`, or refresh the data of its draft (a review past draft
    keeps what it states: people are reviewing those numbers)."""
    now = now or utcnow()
    facts = await draft_facts(
        session=session, issue=issue, config=config, gateway_routes=gateway_routes
    )
    review = await review_of(session=session, issue_id=issue.id)
    if review is not None:
        if review.state == ReviewState.draft.value:
            review.facts = facts
            review.updated_at = now
        return review
    review = Review(
        issue_id=issue.id,
        state=ReviewState.draft.value,
        title=issue.title,
        summary="",
        root_cause=issue.root_cause or "",
        contributing_factors="",
        went_well="",
        went_badly="",
        facts=facts,
        created_at=now,
        updated_at=now,
        drafted_by=actor,
    )
    session.add(review)
    await session.flush()
    radius = facts.get("blast_radius") or {}
    triage.record(
        session,
        issue,
        actor=actor,
        kind="review",
        text=f"Post-incident review #{review.id} drafted"
        + (f": {radius['failed_calls']} failed calls" if radius else ""),
        data={"review_id": review.id},
        at=now,
    )
    return review


# --- reviews ------------------------------------------------------------------------------


async def get_review(*, session: AsyncSession, review_id: int) -> Review:
    review = await session.get(Review, review_id)
    if review is None:
        raise NotFound(f"no review with id {review_id}")
    return review


async def list_reviews(
    *, session: AsyncSession, state: str | None, limit: int, offset: int
) -> tuple[list[tuple[Review, Issue]], int]:
    query = select(Review, Issue).join(Issue, Issue.id == Review.issue_id)
    if state:
        query = query.where(Review.state == state)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(
        query.order_by(Review.created_at.desc(), Review.id.desc()).limit(limit).offset(offset)
    )
    return [(r, i) for r, i in rows], total


def summary_of(review: Review, issue: Issue) -> ReviewSummary:
    radius = (review.facts or {}).get("blast_radius") or {}
    return ReviewSummary(
        id=review.id,
        issue_id=issue.id,
        issue_title=issue.title,
        issue_priority=issue.priority,
        state=ReviewState(review.state),
        title=review.title,
        failed_calls=radius.get("failed_calls"),
        created_at=review.created_at,
        updated_at=review.updated_at,
    )


async def to_read(*, session: AsyncSession, review: Review) -> ReviewRead:
    issue = await triage.get_issue(session=session, issue_id=review.issue_id)
    items = await session.execute(
        select(Issue)
        .join(ActionItem, ActionItem.issue_id == Issue.id)
        .where(ActionItem.review_id == review.id)
        .order_by(ActionItem.id)
    )
    state = ReviewState(review.state)
    return ReviewRead(
        id=review.id,
        issue_id=issue.id,
        issue_title=issue.title,
        issue_priority=issue.priority,
        state=state,
        allowed_transitions=rules.allowed(state),
        title=review.title,
        summary=review.summary,
        root_cause=review.root_cause,
        contributing_factors=review.contributing_factors,
        went_well=review.went_well,
        went_badly=review.went_badly,
        facts=review.facts or {},
        action_items=[
            ActionItemRead(
                issue_id=i.id,
                title=i.title,
                priority=i.priority,
                status=i.status,
                assignee=i.assignee,
            )
            for (i,) in items
        ],
        created_at=review.created_at,
        updated_at=review.updated_at,
        drafted_by=review.drafted_by,
        published_at=review.published_at,
    )


async def update_review(
    *, session: AsyncSession, review_id: int, changes: dict[str, Any], actor: str
) -> Review:
    review = await get_review(session=session, review_id=review_id)
    if review.state == ReviewState.published.value:
        raise Conflict("a published review is not edited; move it back to in_review first")
    changed = []
    for name, value in changes.items():
        if value is None:
            continue
        if getattr(review, name) != value:
            setattr(review, name, value)
            changed.append(name)
    if changed:
        review.updated_at = utcnow()
        issue = await triage.get_issue(session=session, issue_id=review.issue_id)
        triage.record(
            session,
            issue,
            actor=actor,
            kind="review",
            text=f"Review #{review.id}: {', '.join(n.replace('_', ' ') for n in changed)} edited",
            data={"review_id": review.id, "fields": changed},
        )
    return review


async def transition_review(
    *, session: AsyncSession, review_id: int, to: ReviewState, actor: str
) -> Review:
    review = await get_review(session=session, review_id=review_id)
    current = ReviewState(review.state)
    missing = [
        f.replace("_", " ") for f in rules.REQUIRED_TO_PUBLISH if not getattr(review, f).strip()
    ]
    rules.check_transition(current, to, missing=missing)
    now = utcnow()
    review.state = to.value
    review.updated_at = now
    review.published_at = now if to is ReviewState.published else None
    issue = await triage.get_issue(session=session, issue_id=review.issue_id)
    triage.record(
        session,
        issue,
        actor=actor,
        kind="review",
        text=f"Review #{review.id}: {current.value} → {to.value}",
        data={"review_id": review.id, "from": current.value, "to": to.value},
        at=now,
    )
    return review


async def add_action_item(
    *,
    session: AsyncSession,
    matrix: Matrix,
    review_id: int,
    data: ActionItemCreate,
    actor: str,
) -> Issue:
    """An action item is an issue of its own (the lowest priority unless told), labelled
    and linked to the review, so it is triaged and tracked like any other."""
    review = await get_review(session=session, review_id=review_id)
    priority = data.priority or matrix.levels[-1].level
    if priority not in matrix.by_name:
        raise InvalidInput(
            f"unknown priority {priority!r} (the matrix has {', '.join(matrix.by_name)})"
        )
    source = await triage.get_issue(session=session, issue_id=review.issue_id)
    issue = await triage.create_issue(
        session=session,
        matrix=matrix,
        data=IssueCreate(
            title=data.title,
            description=(data.description + "\n\n" if data.description else "")
            + f"Action item of the post-incident review #{review.id} of issue #{source.id}.",
            priority=priority,
            component=source.component,
            labels=["action-item", f"review-{review.id}"],
            assignee=data.assignee,
        ),
        actor=actor,
    )
    session.add(ActionItem(review_id=review.id, issue_id=issue.id, created_at=utcnow()))
    triage.record(
        session,
        source,
        actor=actor,
        kind="review",
        text=f"Review #{review.id}: action item #{issue.id} {data.title}",
        data={"review_id": review.id, "action_item": issue.id},
    )
    review.updated_at = utcnow()
    return issue


# --- runbooks -----------------------------------------------------------------------------


def runbook_read(rb: Runbook) -> RunbookRead:
    return RunbookRead(
        id=rb.id,
        name=rb.name,
        title=rb.title,
        body=rb.body,
        components=list(rb.components or []),
        routes=list(rb.routes or []),
        rules=list(rb.rules or []),
        source=rb.source,
        updated_at=rb.updated_at,
        updated_by=rb.updated_by,
    )


async def _index(
    *, session: AsyncSession, kind: str, ref: int, title: str, body: str, component: str | None
) -> None:
    doc = await session.scalar(
        select(KnowledgeDoc).where(KnowledgeDoc.kind == kind, KnowledgeDoc.ref == ref)
    )
    if doc is None:
        session.add(
            KnowledgeDoc(
                kind=kind, ref=ref, title=title, body=body, component=component, updated_at=utcnow()
            )
        )
    else:
        doc.title, doc.body, doc.component, doc.updated_at = title, body, component, utcnow()


async def _unindex(*, session: AsyncSession, kind: str, ref: int) -> None:
    await session.execute(
        delete(KnowledgeDoc).where(KnowledgeDoc.kind == kind, KnowledgeDoc.ref == ref)
    )


async def list_runbooks(*, session: AsyncSession) -> list[Runbook]:
    return list(await session.scalars(select(Runbook).order_by(Runbook.name)))


async def get_runbook(*, session: AsyncSession, name: str) -> Runbook:
    rb = await session.scalar(select(Runbook).where(Runbook.name == name))
    if rb is None:
        raise NotFound(f"no runbook named {name!r}")
    return rb


async def save_runbook(
    *,
    session: AsyncSession,
    name: str,
    data: RunbookWrite,
    actor: str,
    source: str = "api",
    create: bool = False,
) -> Runbook:
    """Create (`create`: refused when the name exists) or replace a runbook."""
    rb = await session.scalar(select(Runbook).where(Runbook.name == name))
    if rb is not None and create:
        raise Conflict(f"a runbook named {name!r} exists; PUT /api/v1/runbooks/{name} replaces it")
    if rb is not None and rb.source == "config" and source == "api":
        raise Conflict(f"runbook {name!r} comes from the configuration file; change it there")
    if rb is None:
        rb = Runbook(name=name, source=source)
        session.add(rb)
    rb.title, rb.body = data.title, data.body
    rb.components, rb.routes, rb.rules = list(data.components), list(data.routes), list(data.rules)
    rb.updated_at, rb.updated_by = utcnow(), actor
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a runbook named {name!r} was just created; try again") from None
    await _index(
        session=session,
        kind="runbook",
        ref=rb.id,
        title=rb.title,
        body=rb.body,
        component=rb.components[0] if rb.components else None,
    )
    return rb


async def delete_runbook(*, session: AsyncSession, name: str) -> None:
    rb = await get_runbook(session=session, name=name)
    if rb.source == "config":
        raise Conflict(f"runbook {name!r} comes from the configuration file; remove it there")
    await _unindex(session=session, kind="runbook", ref=rb.id)
    await session.delete(rb)


async def sync_config_runbooks(*, session: AsyncSession, runbooks: Sequence[RunbookConfig]) -> None:
    """Make the stored ``config`` runbooks those of the file (on start)."""
    wanted = {rb.name: rb for rb in runbooks}
    for stored in await session.scalars(select(Runbook).where(Runbook.source == "config")):
        if stored.name not in wanted:
            await _unindex(session=session, kind="runbook", ref=stored.id)
            await session.delete(stored)
    await session.flush()
    for rb in runbooks:
        existing = await session.scalar(select(Runbook).where(Runbook.name == rb.name))
        if existing is not None and existing.source != "config":
            existing.source = "config"  # the file wins over an API copy of the same name
        await save_runbook(
            session=session,
            name=rb.name,
            data=RunbookWrite(
                title=rb.title,
                body=rb.body,
                components=rb.components,
                routes=rb.routes,
                rules=rb.rules,
            ),
            actor="config",
            source="config",
        )


async def sync_workaround(*, session: AsyncSession, issue_id: int) -> None:
    """Index the workaround of a resolved issue; drop it from the index otherwise."""
    issue = await session.get(Issue, issue_id)
    if issue is None or issue.status not in DONE or not (issue.workaround or "").strip():
        await _unindex(session=session, kind="workaround", ref=issue_id)
        return
    await _index(
        session=session,
        kind="workaround",
        ref=issue.id,
        title=issue.title,
        body=issue.workaround or "",
        component=issue.component,
    )


async def knowledge_for(
    *,
    session: AsyncSession,
    issue: Issue,
    gateway_routes: Sequence[tuple[str, str | None, str | None]],
    limit: int = 10,
) -> IssueKnowledge:
    """The runbooks matching `issue` and workarounds of resolved issues of its component."""
    signals = list(
        await session.execute(
            select(Signal.route, Signal.labels).where(Signal.issue_id == issue.id).limit(1000)
        )
    )
    routes = route_names(issue, (r for r, _ in signals if r), gateway_routes)
    rule_names = {
        str((labels or {}).get("rule")) for _, labels in signals if (labels or {}).get("rule")
    }
    stored = await list_runbooks(session=session)
    matched = rules.match_runbooks(
        (rules.RunbookFacts(rb.name, rb.components, rb.routes, rb.rules) for rb in stored),
        component=issue.component,
        routes=routes,
        rules=rule_names,
    )
    workarounds: list[Workaround] = []
    if issue.component:
        for past in await session.scalars(
            select(Issue)
            .where(
                Issue.component == issue.component,
                Issue.id != issue.id,
                Issue.status.in_(DONE),
                Issue.workaround.is_not(None),
                Issue.workaround != "",
            )
            .order_by(Issue.resolved_at.desc(), Issue.id.desc())
            .limit(limit)
        ):
            workarounds.append(
                Workaround(
                    issue_id=past.id,
                    title=past.title,
                    component=past.component,
                    workaround=past.workaround or "",
                    resolved_at=past.resolved_at,
                )
            )
    return IssueKnowledge(
        runbooks=[runbook_read(rb) for rb in stored if rb.name in matched][:limit],
        matched_by=matched,
        workarounds=workarounds,
    )


# --- full-text search ---------------------------------------------------------------------


def fts5_query(q: str) -> str:
    """User text as an FTS5 query: every word a quoted term, all of them required (so
    ``-``, ``:``, ``*`` or ``"`` are never operators). Whole stemmed words, as PostgreSQL's
    `websearch_to_tsquery` matches them (a prefix query would not be stemmed: "pay*" is
    looked up as "pai*")."""
    words = [w.replace('"', '""') for w in q.split() if w.strip()]
    return " ".join(f'"{w}"' for w in words)


async def search(*, session: AsyncSession, q: str, limit: int) -> list[SearchHit]:
    """Runbooks and workarounds of resolved issues matching `q`, best first: SQLite FTS5
    (bm25) or PostgreSQL full text (ts_rank over ``websearch_to_tsquery``)."""
    q = q.strip()
    if not q:
        raise InvalidInput("give some words to search for: ?q=timeout")
    if session.get_bind().dialect.name == "postgresql":
        vector: Any = literal_column(
            "to_tsvector('english', knowledge_docs.title || ' ' || knowledge_docs.body)"
        )
        query = func.websearch_to_tsquery("english", q)
        rows = await session.execute(
            select(
                KnowledgeDoc.kind,
                KnowledgeDoc.ref,
                KnowledgeDoc.title,
                func.ts_headline(
                    "english",
                    KnowledgeDoc.body,
                    query,
                    "StartSel=[[, StopSel=]], MaxWords=30, MinWords=10",
                ),
                KnowledgeDoc.component,
            )
            .where(vector.op("@@")(query))
            .order_by(func.ts_rank(vector, query).desc(), KnowledgeDoc.id)
            .limit(limit)
        )
    else:
        match = fts5_query(q)
        if not match:
            return []
        rows = await session.execute(
            text(
                "SELECT d.kind, d.ref, d.title, "
                "snippet(knowledge_fts, 1, '[[', ']]', '…', 20), d.component "
                "FROM knowledge_fts JOIN knowledge_docs d ON d.id = knowledge_fts.rowid "
                "WHERE knowledge_fts MATCH :q ORDER BY bm25(knowledge_fts), d.id LIMIT :n"
            ),
            {"q": match, "n": limit},
        )
    found = [(str(k), int(r), str(t), str(s or ""), c) for k, r, t, s, c in rows]
    runbook_ids = [r for k, r, *_ in found if k == "runbook"]
    names: dict[int, str] = {}
    if runbook_ids:
        found_names = await session.execute(
            select(Runbook.id, Runbook.name).where(Runbook.id.in_(runbook_ids))
        )
        names = {int(i): str(n) for i, n in found_names}
    return [
        SearchHit(
            kind=k,
            ref=r,
            title=t,
            snippet=s,
            component=c,
            link=f"/runbooks#runbook-{names.get(r, '')}" if k == "runbook" else f"/issues/{r}",
        )
        for k, r, t, s, c in found
    ]

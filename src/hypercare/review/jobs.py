"""The review loop: tails committed timeline entries (the outbox) by id and
- drafts the review of a P1/P2 (``review.priorities``) issue when it is resolved;
- keeps the knowledge-base index of resolved issues' workarounds in step.

Drafting is idempotent (one review per issue, refreshed while it is a draft), so an entry
read twice after a crash does no harm; an entry of a rolled-back change is never read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from hypercare.api.state import AppState
from hypercare.response.rules import advance_cursor
from hypercare.review import service
from hypercare.triage.models import Issue
from hypercare.triage.rules import Status

log = logging.getLogger("hypercare.review")

BATCH = 500
GAP_WAIT = 10.0  # seconds a hole in the timeline ids is waited for (see advance_cursor)
_KNOWLEDGE_FIELDS = frozenset({"workaround", "title", "component"})


@dataclass
class ReviewRuntime:
    cursor: int | None = None
    seen: set[int] = field(default_factory=set)
    gaps: dict[int, float] = field(default_factory=dict)
    drafted: int = 0


def runtime(state: AppState) -> ReviewRuntime:
    return state.runtimes.setdefault(ReviewRuntime, ReviewRuntime)


def gateway_routes(state: AppState) -> list[tuple[str, str | None, str | None]]:
    return [(r.name, r.match.path, r.tags.get("component")) for r in state.config.all_routes()]


async def start(state: AppState) -> ReviewRuntime:
    """Load the file's runbooks and place the cursor (at the newest entry on a first start:
    issues resolved before reviews existed are not drafted)."""
    rt = runtime(state)
    async with state.sessions() as session, session.begin():
        await service.sync_config_runbooks(session=session, runbooks=state.config.review.runbooks)
        stored = await service.get_cursor(session=session)
        if stored is None:
            rt.cursor = await service.newest_entry_id(session=session)
            await service.set_cursor(session=session, value=rt.cursor)
        else:
            rt.cursor = stored
    return rt


async def step(state: AppState, rt: ReviewRuntime) -> int:
    """One pass over newly committed entries; returns how many reviews it drafted."""
    if rt.cursor is None:
        raise RuntimeError("review.jobs.start() places the cursor first")
    cfg = state.config.review
    after = max(rt.seen, default=rt.cursor)
    drafted = 0
    async with state.sessions() as session, session.begin():
        entries = await service.entries_after(
            session=session, after=after, also=rt.gaps, limit=BATCH
        )
        resolved: set[int] = set()
        knowledge: set[int] = set()
        for _, issue_id, kind, data in entries:
            if kind == "status":
                knowledge.add(issue_id)
                if data.get("to") == Status.resolved.value:
                    resolved.add(issue_id)
            elif kind == "field" and data.get("field") in _KNOWLEDGE_FIELDS:
                knowledge.add(issue_id)
        for issue_id in sorted(knowledge):
            await service.sync_workaround(session=session, issue_id=issue_id)
        for issue_id in sorted(resolved):
            issue = await session.get(Issue, issue_id)
            if issue is None or issue.priority not in cfg.priorities:
                continue
            try:
                # a savepoint per issue: one that cannot be drafted (another console replica
                # drafted it at the same moment, or a bug) does not hold up the others or
                # the cursor; it can still be drafted on request (POST /issues/{id}/review)
                async with session.begin_nested():
                    await service.draft_review(
                        session=session,
                        issue=issue,
                        config=cfg,
                        gateway_routes=gateway_routes(state),
                        actor="hypercare",
                    )
            except Exception:
                log.exception("could not draft the review of issue %d", issue_id)
                continue
            drafted += 1
        seen = rt.seen | {e[0] for e in entries}
        cursor, gaps = advance_cursor(rt.cursor, seen, rt.gaps, now=time.monotonic(), wait=GAP_WAIT)
        if cursor != rt.cursor:
            await service.set_cursor(session=session, value=cursor)
    rt.cursor, rt.gaps = cursor, gaps
    rt.seen = {i for i in seen if i > cursor}
    rt.drafted += drafted
    return drafted


async def run_reviews(state: AppState, stop: asyncio.Event) -> None:
    rt = runtime(state)
    interval = state.config.review.poll_interval.total_seconds()
    while not stop.is_set():
        try:
            drafted = await step(state, rt)
            if drafted:
                log.info("drafted %d post-incident review(s)", drafted)
        except Exception:
            log.exception("review pass failed")  # the next pass retries
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)

"""Read-only queries the console pages need beyond the issue tracker's own service:
counts for the overview, activity across issues, filter choices and a change marker.
Functions take a keyword-only session and never write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.triage.models import Issue, TimelineEntry
from hypercare.triage.rules import OPEN

_OPEN = [s.value for s in OPEN]


@dataclass(frozen=True, slots=True)
class PriorityCount:
    priority: str
    open: int
    at_risk: int
    breached: int


@dataclass(frozen=True, slots=True)
class Activity:
    at: datetime
    actor: str
    kind: str
    text: str
    issue_id: int
    issue_title: str
    priority: str


async def open_counts(*, session: AsyncSession, levels: list[str]) -> list[PriorityCount]:
    """Open issues per priority level (every level of the matrix, zeros included)."""
    rows = await session.execute(
        select(Issue.priority, Issue.sla_state, func.count())
        .where(Issue.status.in_(_OPEN))
        .group_by(Issue.priority, Issue.sla_state)
    )
    table: dict[str, dict[str, int]] = {lv: {} for lv in levels}
    for priority, sla, count in rows:
        table.setdefault(priority, {})[sla] = count
    return [
        PriorityCount(
            priority=p,
            open=sum(by_state.values()),
            at_risk=by_state.get("at_risk", 0),
            breached=by_state.get("breached", 0),
        )
        for p, by_state in table.items()
    ]


async def urgent_open(*, session: AsyncSession, limit: int) -> list[Issue]:
    """Open issues with an SLA, soonest due first."""
    # past due dates sort first, so breached issues lead, then those closest to breach
    query = (
        select(Issue)
        .where(Issue.status.in_(_OPEN), Issue.due_at.is_not(None))
        .order_by(Issue.due_at, Issue.priority, Issue.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def recent_activity(*, session: AsyncSession, limit: int) -> list[Activity]:
    """The latest timeline entries across every issue, newest first."""
    rows = await session.execute(
        select(
            TimelineEntry.at,
            TimelineEntry.actor,
            TimelineEntry.kind,
            TimelineEntry.text,
            Issue.id,
            Issue.title,
            Issue.priority,
        )
        .join(Issue, Issue.id == TimelineEntry.issue_id)
        .order_by(TimelineEntry.id.desc())
        .limit(limit)
    )
    return [Activity(*row) for row in rows]


async def choices(*, session: AsyncSession) -> tuple[list[str], list[str]]:
    """Components and assignees in use, for the triage filters."""
    components = await session.scalars(
        select(Issue.component).where(Issue.component.is_not(None)).distinct().limit(500)
    )
    assignees = await session.scalars(
        select(Issue.assignee).where(Issue.assignee.is_not(None)).distinct().limit(500)
    )
    return sorted(c for c in components if c), sorted(a for a in assignees if a)


async def change_marker(*, session: AsyncSession) -> int:
    """The newest timeline entry id. Every change to an issue appends one (that is the
    tracker's rule), so the live stream only has to compare this number."""
    return int(await session.scalar(select(func.max(TimelineEntry.id))) or 0)


@dataclass(frozen=True, slots=True)
class HourlySeries:
    """Issues opened and resolved per hour: x is the start of each hour, in Unix seconds."""

    x: list[int]
    opened: list[int]
    resolved: list[int]


async def hourly_flow(*, session: AsyncSession, now: datetime, hours: int) -> HourlySeries:
    """Opened and resolved issues per hour over the last `hours` hours (for the chart)."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    first = int(start.timestamp())
    opened = [0] * hours
    resolved = [0] * hours
    for column, counts in ((Issue.created_at, opened), (Issue.resolved_at, resolved)):
        for (at,) in await session.execute(select(column).where(column >= start)):
            if at is None:
                continue
            slot = int((at.timestamp() - first) // 3600)
            if 0 <= slot < hours:
                counts[slot] += 1
    return HourlySeries(
        x=[first + 3600 * i for i in range(hours)], opened=opened, resolved=resolved
    )

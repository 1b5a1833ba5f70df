"""Shift handover: the draft built from the current state, for the outgoing shift to edit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.feedback.models import Handover, HandoverIssue, Signal, SignalGroup
from hypercare.store.base import utcnow
from hypercare.triage.models import Issue
from hypercare.triage.rules import OPEN, SlaState, Status

T = TypeVar("T")
WATCH_WINDOW = timedelta(hours=12)
# lines per list of the draft (a Handover holds at most 200): the most urgent first, then
# one line saying how many more there are
MAX_LINES = 50


def capped(items: Sequence[T], limit: int = MAX_LINES, line: Callable[[T], str] = str) -> list[str]:
    """The first `items` as lines, at most `limit` of them, the last one counting what was
    left out. Only the lines kept are formatted."""
    if len(items) <= limit:
        return [line(i) for i in items]
    kept = [line(i) for i in items[: limit - 1]]
    return [*kept, f"… and {len(items) - limit + 1} more (see the triage queue)"]


async def draft(
    *, session: AsyncSession, levels: list[str], now: datetime | None = None
) -> Handover:
    """Open issues by priority (status, owner, SLA), investigations in progress,
    mitigations in place, and things to watch: SLA at risk or breached, alerts still
    firing, and the team's observations of the last 12 hours."""
    now = now or utcnow()
    # plain rows of the columns used: a launch week can have well over a thousand open
    # issues, and ORM objects for all of them cost more than the rest of the draft
    issues = (
        await session.execute(
            select(
                Issue.id,
                Issue.title,
                Issue.priority,
                Issue.status,
                Issue.assignee,
                Issue.sla_state,
                Issue.due_at,
                Issue.workaround,
            )
            .where(Issue.status.in_([s.value for s in OPEN]))
            .order_by(Issue.priority, Issue.due_at.is_(None), Issue.due_at, Issue.id)
        )
    ).all()
    by_priority: dict[str, list[HandoverIssue]] = {lv: [] for lv in levels}
    for i in issues:
        by_priority.setdefault(i.priority, []).append(
            HandoverIssue(
                id=i.id,
                title=i.title,
                priority=i.priority,
                status=i.status,
                assignee=i.assignee,
                sla_state=i.sla_state,
                due_at=i.due_at,
            )
        )
    investigations = capped(
        [i for i in issues if i.status == Status.investigating.value],
        line=lambda i: f"#{i.id} {i.title} ({i.priority}, {i.assignee or 'unassigned'})",
    )
    mitigations = capped(
        [i for i in issues if i.status == Status.mitigated.value or i.workaround],
        line=lambda i: f"#{i.id} {i.title}" + (f": {i.workaround}" if i.workaround else ""),
    )
    # SLA lines are capped on their own so that firing alerts and observations still show
    watch = capped(
        [i for i in issues if i.sla_state in (SlaState.at_risk.value, SlaState.breached.value)],
        MAX_LINES // 2,
        line=lambda i: f"#{i.id} SLA {i.sla_state.replace('_', ' ')} (due {_hhmm(i.due_at)})",
    )
    firing = await session.scalars(
        select(SignalGroup)
        .where(SignalGroup.open.is_(True), SignalGroup.status == "firing")
        .order_by(SignalGroup.last_seen.desc())
        .limit(50)
    )
    for g in firing:
        watch.append(
            f"#{g.issue_id} still firing: {g.dedup_key} "
            f"({g.count} times, last {_hhmm(g.last_seen)})"
        )
    notes = await session.scalars(
        select(Signal)
        .where(Signal.kind == "team", Signal.source == "observation")
        .where(Signal.received_at >= now - WATCH_WINDOW)
        .order_by(Signal.received_at.desc())
        .limit(50)
    )
    for n in notes:
        where = f" [{n.component}]" if n.component else ""
        watch.append(f"observation{where}: {n.summary}")
    return Handover(
        shift=f"handover {now.strftime('%Y-%m-%d %H:%M')} UTC",
        open_issues={k: v for k, v in by_priority.items() if v},
        investigations=investigations,
        mitigations=mitigations,
        watch=watch,  # at most 25 + 50 + 50 lines
    )


def _hhmm(at: datetime | None) -> str:
    return at.strftime("%H:%M UTC") if at else "no due time"

"""Shift handover: the draft built from the current state, for the outgoing shift to edit."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.feedback.models import Handover, HandoverIssue, Signal, SignalGroup
from hypercare.store.base import utcnow
from hypercare.triage.models import Issue
from hypercare.triage.rules import OPEN, SlaState, Status

WATCH_WINDOW = timedelta(hours=12)
# lines per list of the draft (a Handover holds at most 200): the most urgent first, then
# one line saying how many more there are
MAX_LINES = 50


def capped(lines: list[str], limit: int = MAX_LINES) -> list[str]:
    """`lines` cut to `limit`, the last line counting what was left out."""
    if len(lines) <= limit:
        return lines
    return [*lines[: limit - 1], f"… and {len(lines) - limit + 1} more (see the triage queue)"]


async def draft(
    *, session: AsyncSession, levels: list[str], now: datetime | None = None
) -> Handover:
    """Open issues by priority (status, owner, SLA), investigations in progress,
    mitigations in place, and things to watch: SLA at risk or breached, alerts still
    firing, and the team's observations of the last 12 hours."""
    now = now or utcnow()
    issues = list(
        await session.scalars(
            select(Issue)
            .where(Issue.status.in_([s.value for s in OPEN]))
            .order_by(Issue.priority, Issue.due_at.is_(None), Issue.due_at, Issue.id)
        )
    )
    by_priority: dict[str, list[HandoverIssue]] = {lv: [] for lv in levels}
    investigations, mitigations, watch = [], [], []
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
        owner = i.assignee or "unassigned"
        if i.status == Status.investigating.value:
            investigations.append(f"#{i.id} {i.title} ({i.priority}, {owner})")
        if i.status == Status.mitigated.value or i.workaround:
            how = f": {i.workaround}" if i.workaround else ""
            mitigations.append(f"#{i.id} {i.title}{how}")
        if i.sla_state in (SlaState.at_risk.value, SlaState.breached.value):
            watch.append(f"#{i.id} SLA {i.sla_state.replace('_', ' ')} (due {_hhmm(i.due_at)})")
    # SLA lines are capped on their own so that firing alerts and observations still show
    watch = capped(watch, MAX_LINES // 2)
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
        investigations=capped(investigations),
        mitigations=capped(mitigations),
        watch=watch,  # at most 25 + 50 + 50 lines
    )


def _hhmm(at: datetime | None) -> str:
    return at.strftime("%H:%M UTC") if at else "no due time"

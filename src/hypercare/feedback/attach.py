"""The attach step: which issue a stored signal belongs to.

One function, `attach`, so the detection work can replace it with scoring later. Today's
rule is dedup by key: the same key while its issue is open updates that issue (counter,
last seen, a timeline entry); a ``resolved`` signal marks the group resolved and says so on
the timeline; a new firing key opens an issue in ``new`` with a suggested priority.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.feedback import priorities as priority_rules
from hypercare.feedback.models import Signal, SignalGroup
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, IssueCreate
from hypercare.triage.rules import DONE, Matrix

ACTOR = "feedback"
_DONE = tuple(s.value for s in DONE)


async def attach(
    *,
    session: AsyncSession,
    matrix: Matrix,
    signal: Signal,
    priorities: Mapping[str, Mapping[str, str]],
    create: bool = True,
) -> Issue | None:
    """Link `signal` to an issue (setting ``signal.issue_id``) and return it, or None when
    the signal stands alone (a resolve for nothing open, or `create` is False)."""
    if signal.issue_id is not None:
        linked = await triage.get_issue(session=session, issue_id=signal.issue_id)
        _note(session, linked, signal, kind="signal")
        return linked
    group = await session.scalar(
        select(SignalGroup)
        .where(SignalGroup.dedup_key == signal.dedup_key, SignalGroup.open.is_(True))
        .order_by(SignalGroup.id.desc())
        .limit(1)
    )
    if group is not None:
        issue = await session.get(Issue, group.issue_id)
        if issue is not None and issue.status not in _DONE:
            return _update_group(session, group, issue, signal)
        group.open = False
    if signal.status == "resolved" or not create:
        return None
    priority = priority_rules.suggest(
        priorities, matrix, source=signal.source, severity=signal.severity
    )
    labels = [f"source:{signal.source}"]
    if signal.severity:
        labels.append(f"severity:{signal.severity}"[:60])
    issue = await triage.create_issue(
        session=session,
        matrix=matrix,
        data=IssueCreate(
            title=signal.summary[:300] or f"{signal.source} signal",
            description=signal.body[:20_000],
            priority=priority,
            component=signal.component,
            route=signal.route,
            labels=labels,
            impact_started_at=signal.occurred_at,
        ),
        actor=ACTOR,
        detected_at=signal.received_at,
        now=signal.received_at,
    )
    session.add(
        SignalGroup(
            dedup_key=signal.dedup_key,
            issue_id=issue.id,
            open=True,
            count=1,
            status=signal.status,
            first_seen=signal.received_at,
            last_seen=signal.received_at,
        )
    )
    signal.issue_id = issue.id
    _note(session, issue, signal, kind="signal")
    return issue


def _update_group(session: AsyncSession, group: SignalGroup, issue: Issue, signal: Signal) -> Issue:
    group.count += 1
    group.last_seen = signal.received_at
    signal.issue_id = issue.id
    if signal.status == "resolved":
        group.status = "resolved"
        _note(session, issue, signal, kind="signal_resolved", count=group.count)
    else:
        if signal.status == "firing":
            group.status = "firing"
        _note(session, issue, signal, kind="signal", count=group.count)
    return issue


def _note(
    session: AsyncSession, issue: Issue, signal: Signal, *, kind: str, count: int = 1
) -> None:
    verb = "resolved" if kind == "signal_resolved" else "received"
    text = f"{signal.source} signal {verb}: {signal.summary}"
    if count > 1:
        text += f" (seen {count} times)"
    triage.record(
        session,
        issue,
        actor=ACTOR,
        kind=kind,
        text=text[:2000],
        data={
            "signal_id": signal.id,
            "source": signal.source,
            "dedup_key": signal.dedup_key,
            "status": signal.status,
            "count": count,
        },
        at=signal.received_at,
    )

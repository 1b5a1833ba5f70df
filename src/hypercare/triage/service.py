"""Issue reads and writes. Functions take a keyword-only session and never commit.

Every change appends a timeline entry in the same transaction: nothing is edited in place
without a trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import InvalidInput, NotFound
from hypercare.store.base import utcnow
from hypercare.store.ids import adopt, insert_new
from hypercare.triage import rules
from hypercare.triage.models import Issue, IssueCreate, IssueRead, TimelineEntry
from hypercare.triage.rules import DONE, Matrix, SlaState, Status

_NOT_NULL = {"title", "description", "priority", "labels"}
_TRACKED = (
    "title",
    "description",
    "component",
    "route",
    "labels",
    "workaround",
    "root_cause",
    "fix_ref",
    "impact_started_at",
)


@dataclass(frozen=True, slots=True)
class IssueFilter:
    status: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    component: str | None = None
    assignee: str | None = None
    sla_state: tuple[str, ...] = ()
    q: str | None = None


def record(
    session: AsyncSession,
    issue: Issue,
    *,
    actor: str,
    kind: str,
    text: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> TimelineEntry:
    """Append one timeline entry to `issue` (other domains call this too)."""
    entry = TimelineEntry(**entry_row(issue, actor=actor, kind=kind, text=text, data=data, at=at))
    session.add(entry)
    return entry


def _record(
    session: AsyncSession,
    issue: Issue,
    entries: list[dict[str, Any]] | None,
    *,
    actor: str,
    kind: str,
    text: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """`record`, or its row appended to `entries` when given."""
    if entries is None:
        record(session, issue, actor=actor, kind=kind, text=text, data=data, at=at)
    else:
        entries.append(entry_row(issue, actor=actor, kind=kind, text=text, data=data, at=at))


def entry_row(
    issue: Issue,
    *,
    actor: str,
    kind: str,
    text: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """`record` as a plain row, for `add_entries` (the issue's `updated_at` moves now): a
    batch's many entries go in one statement, without an ORM object each."""
    at = at or utcnow()
    issue.updated_at = at
    return {
        "issue_id": issue.id,
        "at": at,
        "actor": actor,
        "kind": kind,
        "text": text,
        "data": data or {},
    }


async def add_entries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert timeline entries made by `entry_row` (their issues written already), in order,
    in one executemany."""
    if rows:
        await session.execute(insert(cast(Table, TimelineEntry.__table__)), list(rows))


def _apply_sla(issue: Issue, matrix: Matrix, now: datetime) -> SlaState:
    level = matrix.level(issue.priority)
    state = rules.sla_state(
        now=now,
        due=issue.due_at,
        target=level.target,
        at_risk_fraction=matrix.at_risk_fraction,
        stopped_at=issue.resolved_at or issue.closed_at,
    )
    issue.sla_state = state.value
    issue.escalation_level = max(
        issue.escalation_level or 0, rules.escalation_level(state, level.escalation)
    )
    return state


async def create_issue(
    *,
    session: AsyncSession,
    matrix: Matrix,
    data: IssueCreate,
    actor: str,
    detected_at: datetime | None = None,
    now: datetime | None = None,
) -> Issue:
    (issue,) = await create_issues(
        session=session,
        matrix=matrix,
        items=[NewIssue(data, actor, detected_at, now or utcnow())],
    )
    return issue


@dataclass(frozen=True, slots=True)
class NewIssue:
    """One issue for `create_issues`: what `create_issue` takes."""

    data: IssueCreate
    actor: str
    detected_at: datetime | None
    now: datetime


async def create_issues(
    *,
    session: AsyncSession,
    matrix: Matrix,
    items: Sequence[NewIssue],
    write_locked: bool = False,
    entries: list[dict[str, Any]] | None = None,
) -> list[Issue]:
    """`create_issue` for several issues with one flush: the issues in order, each with its
    "created" (and "assignment") timeline entries. `write_locked`: the transaction has
    written already (on SQLite it holds the write lock), so the issues get their ids first
    and go in one INSERT. `entries`: the timeline entries are appended there as rows (for
    `add_entries`) instead of added to the session.

    The issues go in as plain rows (`hypercare.store.ids.insert_new`: one statement, where a
    flush spends most of its time on its own bookkeeping), then join the session as if read
    back, so that later changes to them are flushed as usual."""
    issues = [_new_issue(matrix, item) for item in items]
    await insert_new(session, Issue, issues, write_locked=write_locked)
    adopt(session, issues)
    for issue, item in zip(issues, items, strict=True):
        level = matrix.level(issue.priority)
        rows = [
            entry_row(
                issue,
                actor=item.actor,
                kind="created",
                text=f"Issue opened as {issue.priority} ({level.name})",
                data={"priority": issue.priority, "due_at": _iso(issue.due_at)},
                at=item.now,
            )
        ]
        if item.data.assignee:
            rows.append(
                entry_row(
                    issue,
                    actor=item.actor,
                    kind="assignment",
                    data={"to": item.data.assignee},
                    at=item.now,
                )
            )
        if entries is not None:
            entries.extend(rows)
        else:
            session.add_all([TimelineEntry(**row) for row in rows])
    return issues


def _new_issue(matrix: Matrix, item: NewIssue) -> Issue:
    data, now = item.data, item.now
    priority = data.priority or matrix.default_priority
    level = matrix.level(priority)
    issue = Issue(
        title=data.title,
        description=data.description,
        priority=priority,
        status=Status.new.value,
        component=data.component,
        route=data.route,
        labels=list(data.labels),
        assignee=data.assignee,
        reporter=item.actor,
        created_at=now,
        updated_at=now,
        impact_started_at=data.impact_started_at,
        detected_at=item.detected_at or now,
        due_at=rules.due_at(now, level),
        escalation_level=0,
        reopen_count=0,
        sla_state=SlaState.ok.value,
    )
    _apply_sla(issue, matrix, now)
    return issue


async def get_issue(*, session: AsyncSession, issue_id: int) -> Issue:
    issue = await session.get(Issue, issue_id)
    if issue is None:
        raise NotFound(f"no issue with id {issue_id}")
    return issue


_SORT_COLUMNS: dict[str, Any] = {
    "id": Issue.id,
    "priority": Issue.priority,
    "status": Issue.status,
    "due": Issue.due_at,
    "updated": Issue.updated_at,
    "assignee": Issue.assignee,
    "component": Issue.component,
}


async def list_issues(
    *,
    session: AsyncSession,
    filters: IssueFilter,
    limit: int,
    offset: int,
    sort: str = "urgency",
    descending: bool = False,
) -> tuple[list[Issue], int]:
    """Issues matching `filters`, most urgent first (priority, then due time, then age), or
    by one of `_SORT_COLUMNS` with empty values last and the id breaking ties."""
    query = select(Issue)
    if filters.status:
        query = query.where(Issue.status.in_(filters.status))
    if filters.priority:
        query = query.where(Issue.priority.in_(filters.priority))
    if filters.component:
        query = query.where(Issue.component == filters.component)
    if filters.assignee:
        query = query.where(Issue.assignee == filters.assignee)
    if filters.sla_state:
        query = query.where(Issue.sla_state.in_(filters.sla_state))
    if filters.q:
        pattern = f"%{_escape_like(filters.q.lower())}%"
        query = query.where(
            or_(
                func.lower(Issue.title).like(pattern, escape="\\"),
                func.lower(Issue.description).like(pattern, escape="\\"),
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    column = _SORT_COLUMNS.get(sort)
    if column is None:
        order: tuple[Any, ...] = (Issue.priority, Issue.due_at.is_(None), Issue.due_at, Issue.id)
    else:
        direction = column.desc() if descending else column.asc()
        order = (column.is_(None), direction, Issue.id)
    ordered = query.order_by(*order).limit(limit).offset(offset)
    return list(await session.scalars(ordered)), total


async def update_issue(
    *,
    session: AsyncSession,
    matrix: Matrix,
    issue_id: int,
    changes: dict[str, Any],
    actor: str,
    now: datetime | None = None,
    entries: list[dict[str, Any]] | None = None,
) -> Issue:
    """Apply `changes` (only the fields the caller set). Priority recomputes the SLA.
    `entries`: the timeline entries are appended there as rows (for `add_entries`) instead of
    added to the session."""
    now = now or utcnow()
    issue = await get_issue(session=session, issue_id=issue_id)
    for name in _NOT_NULL:
        if name in changes and changes[name] is None:
            raise InvalidInput(f"'{name}' cannot be null", details={"field": name})
    if "priority" in changes and changes["priority"] != issue.priority:
        new = changes["priority"]
        level = matrix.level(new)
        old, old_due = issue.priority, issue.due_at
        issue.priority = new
        issue.due_at = rules.due_at(issue.created_at, level)
        _apply_sla(issue, matrix, now)
        _record(
            session,
            issue,
            entries,
            actor=actor,
            kind="priority",
            text=f"Priority {old} → {new}",
            data={"from": old, "to": new, "due_from": _iso(old_due), "due_to": _iso(issue.due_at)},
            at=now,
        )
    if "assignee" in changes and changes["assignee"] != issue.assignee:
        old_assignee = issue.assignee
        issue.assignee = changes["assignee"]
        _record(
            session,
            issue,
            entries,
            actor=actor,
            kind="assignment",
            text=f"Assigned to {issue.assignee}" if issue.assignee else "Unassigned",
            data={"from": old_assignee, "to": issue.assignee},
            at=now,
        )
    for name in _TRACKED:
        if name in changes and changes[name] != getattr(issue, name):
            old_value = getattr(issue, name)
            setattr(issue, name, changes[name])
            _record(
                session,
                issue,
                entries,
                actor=actor,
                kind="field",
                text=f"{name.replace('_', ' ').capitalize()} changed",
                data={"field": name, "from": _jsonable(old_value), "to": _jsonable(changes[name])},
                at=now,
            )
    return issue


async def transition(
    *,
    session: AsyncSession,
    matrix: Matrix,
    issue_id: int,
    to: Status,
    reason: str | None,
    actor: str,
    now: datetime | None = None,
) -> Issue:
    now = now or utcnow()
    issue = await get_issue(session=session, issue_id=issue_id)
    current = Status(issue.status)
    rules.check_transition(current, to, reason)
    stamped = rules.stamp_milestones(
        rules.Milestones(
            acknowledged_at=issue.acknowledged_at,
            mitigated_at=issue.mitigated_at,
            resolved_at=issue.resolved_at,
            verified_at=issue.verified_at,
            closed_at=issue.closed_at,
        ),
        to,
        now,
    )
    issue.acknowledged_at = stamped.acknowledged_at
    issue.mitigated_at = stamped.mitigated_at
    issue.resolved_at = stamped.resolved_at
    issue.verified_at = stamped.verified_at
    issue.closed_at = stamped.closed_at
    issue.status = to.value
    if to is Status.closed:
        issue.close_reason = reason
    if to is Status.reopened:
        issue.reopen_count = (issue.reopen_count or 0) + 1
        issue.close_reason = None
    _apply_sla(issue, matrix, now)
    record(
        session,
        issue,
        actor=actor,
        kind="status",
        text=f"{current.value} → {to.value}" + (f": {reason}" if reason else ""),
        data={"from": current.value, "to": to.value, "reason": reason},
        at=now,
    )
    return issue


async def add_comment(
    *, session: AsyncSession, issue_id: int, text: str, actor: str
) -> TimelineEntry:
    issue = await get_issue(session=session, issue_id=issue_id)
    entry = record(session, issue, actor=actor, kind="comment", text=text)
    await session.flush()
    return entry


async def timeline(*, session: AsyncSession, issue_id: int) -> list[TimelineEntry]:
    await get_issue(session=session, issue_id=issue_id)
    rows = await session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.issue_id == issue_id)
        .order_by(TimelineEntry.at, TimelineEntry.id)
    )
    return list(rows)


async def refresh_sla(*, session: AsyncSession, matrix: Matrix, now: datetime) -> list[Issue]:
    """Re-evaluate the SLA of every open issue; record each one that became at risk or
    breached, or moved up its escalation path. Returns the issues that changed."""
    changed = []
    # breached at the last escalation step of its priority: time can change nothing more
    # (a new due time is applied where it is set), so the clock does not load it again
    settled = and_(
        Issue.sla_state == SlaState.breached.value,
        or_(
            *(
                and_(
                    Issue.priority == lv.level,
                    Issue.escalation_level
                    >= rules.escalation_level(SlaState.breached, lv.escalation),
                )
                for lv in matrix.levels
            )
        ),
    )
    open_issues = await session.scalars(
        select(Issue).where(
            Issue.status.not_in([s.value for s in DONE]),
            Issue.due_at.is_not(None),
            not_(settled),
        )
    )
    for issue in open_issues:
        before_state, before_level = issue.sla_state, issue.escalation_level
        state = _apply_sla(issue, matrix, now)
        if state.value == before_state and issue.escalation_level == before_level:
            continue
        changed.append(issue)
        level = matrix.level(issue.priority)
        if state.value != before_state:
            record(
                session,
                issue,
                actor="hypercare",
                kind="sla",
                text=_sla_text(state, issue.due_at),
                data={"from": before_state, "to": state.value, "due_at": _iso(issue.due_at)},
                at=now,
            )
        if issue.escalation_level != before_level and level.escalation:
            step = level.escalation[issue.escalation_level]
            record(
                session,
                issue,
                actor="hypercare",
                kind="escalation",
                text=f"Escalated to: {step}",
                data={"level": issue.escalation_level, "step": step},
                at=now,
            )
    return changed


def to_read(issue: Issue, matrix: Matrix) -> IssueRead:
    level = matrix.by_name.get(issue.priority)
    status = Status(issue.status)
    times = rules.mttx_of(issue)
    return IssueRead(
        id=issue.id,
        title=issue.title,
        description=issue.description,
        priority=issue.priority,
        status=status,
        component=issue.component,
        route=issue.route,
        labels=list(issue.labels or []),
        assignee=issue.assignee,
        reporter=issue.reporter,
        workaround=issue.workaround,
        root_cause=issue.root_cause,
        fix_ref=issue.fix_ref,
        close_reason=issue.close_reason,
        created_at=issue.created_at,
        updated_at=issue.updated_at,
        impact_started_at=issue.impact_started_at,
        detected_at=issue.detected_at,
        acknowledged_at=issue.acknowledged_at,
        mitigated_at=issue.mitigated_at,
        resolved_at=issue.resolved_at,
        verified_at=issue.verified_at,
        closed_at=issue.closed_at,
        due_at=issue.due_at,
        sla_state=SlaState(issue.sla_state),
        sla_target_seconds=level.target.total_seconds() if level and level.target else None,
        escalation_level=issue.escalation_level,
        escalation_path=list(level.escalation) if level else [],
        reopen_count=issue.reopen_count,
        allowed_transitions=rules.allowed_transitions(status),
        mttd_seconds=times.mttd,
        mtta_seconds=times.mtta,
        mttr_seconds=times.mttr,
    )


def _sla_text(state: SlaState, due: datetime | None) -> str:
    # people read this line on the timeline: the console's clock, not ISO 8601
    when = f" (due {due.astimezone(UTC):%Y-%m-%d %H:%M} UTC)" if due else ""
    return {
        SlaState.ok: "SLA back on track",
        SlaState.at_risk: "SLA at risk: little of the target time remains",
        SlaState.breached: "SLA breached: target resolution time passed",
    }[state] + when


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

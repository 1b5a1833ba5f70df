"""The tracker's store work, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import InvalidTransition, NotFound
from hypercare.triage import service
from hypercare.triage.config import TriageConfig
from hypercare.triage.models import Issue, IssueCreate
from hypercare.triage.rules import Matrix, SlaState, Status

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
MATRIX = Matrix(TriageConfig())


async def _new(session: AsyncSession, **kw: object) -> int:
    data = IssueCreate(title=str(kw.pop("title", "Checkout fails")), **kw)  # type: ignore[arg-type]
    issue = await service.create_issue(
        session=session, matrix=MATRIX, data=data, actor="ana", now=T0
    )
    return issue.id


async def test_create_sets_due_time_and_records_creation(session: AsyncSession) -> None:
    issue_id = await _new(session, priority="P2", assignee="bo")
    issue = await service.get_issue(session=session, issue_id=issue_id)
    assert issue.due_at == T0 + timedelta(hours=4)
    assert issue.status == "new" and issue.detected_at == T0
    kinds = [e.kind for e in await service.timeline(session=session, issue_id=issue_id)]
    assert kinds == ["created", "assignment"]


async def test_priority_change_recomputes_due_and_is_recorded(session: AsyncSession) -> None:
    issue_id = await _new(session, priority="P3")
    issue = await service.update_issue(
        session=session,
        matrix=MATRIX,
        issue_id=issue_id,
        changes={"priority": "P1"},
        actor="lead",
        now=T0 + timedelta(minutes=50),
    )
    assert issue.due_at == T0 + timedelta(hours=1)
    assert issue.sla_state == SlaState.at_risk.value
    entry = (await service.timeline(session=session, issue_id=issue_id))[-1]
    assert (entry.kind, entry.actor, entry.data["from"], entry.data["to"]) == (
        "priority",
        "lead",
        "P3",
        "P1",
    )


async def test_every_field_change_leaves_a_trace(session: AsyncSession) -> None:
    issue_id = await _new(session)
    await service.update_issue(
        session=session,
        matrix=MATRIX,
        issue_id=issue_id,
        changes={"workaround": "retry", "root_cause": "pool exhausted", "assignee": "cy"},
        actor="lead",
    )
    entries = await service.timeline(session=session, issue_id=issue_id)
    fields = {e.data.get("field") for e in entries if e.kind == "field"}
    assert fields == {"workaround", "root_cause"}
    assert any(e.kind == "assignment" and e.data["to"] == "cy" for e in entries)


async def test_lifecycle_stamps_milestones(session: AsyncSession) -> None:
    issue_id = await _new(session, priority="P1")
    for minutes, to in [(3, Status.triaged), (10, Status.mitigated), (30, Status.resolved)]:
        await service.transition(
            session=session,
            matrix=MATRIX,
            issue_id=issue_id,
            to=to,
            reason=None,
            actor="on-call",
            now=T0 + timedelta(minutes=minutes),
        )
    issue = await service.get_issue(session=session, issue_id=issue_id)
    read = service.to_read(issue, MATRIX)
    assert read.mtta_seconds == 180 and read.mttr_seconds == 1800
    assert read.allowed_transitions == [Status.verified, Status.reopened, Status.closed]


async def test_invalid_transition_changes_nothing(session: AsyncSession) -> None:
    issue_id = await _new(session)
    with pytest.raises(InvalidTransition):
        await service.transition(
            session=session,
            matrix=MATRIX,
            issue_id=issue_id,
            to=Status.verified,
            reason=None,
            actor="x",
        )
    issue = await service.get_issue(session=session, issue_id=issue_id)
    assert issue.status == "new"


async def test_missing_issue(session: AsyncSession) -> None:
    with pytest.raises(NotFound):
        await service.get_issue(session=session, issue_id=999)


async def test_list_orders_by_priority_then_due_and_filters(session: AsyncSession) -> None:
    p3 = await _new(session, title="slow search", priority="P3", component="search")
    p1 = await _new(session, title="payments down", priority="P1", component="payments")
    p4 = await _new(session, title="typo", priority="P4")
    p2 = await _new(session, title="Payment receipts late", priority="P2", component="payments")
    everything, total = await service.list_issues(
        session=session, filters=service.IssueFilter(), limit=10, offset=0
    )
    assert [i.id for i in everything] == [p1, p2, p3, p4] and total == 4
    found, _ = await service.list_issues(
        session=session, filters=service.IssueFilter(q="PAYMENT"), limit=10, offset=0
    )
    assert {i.id for i in found} == {p1, p2}
    comp, _ = await service.list_issues(
        session=session,
        filters=service.IssueFilter(component="payments", priority=("P2",)),
        limit=10,
        offset=0,
    )
    assert [i.id for i in comp] == [p2]
    page, total = await service.list_issues(
        session=session, filters=service.IssueFilter(), limit=2, offset=2
    )
    assert [i.id for i in page] == [p3, p4] and total == 4


async def test_like_wildcards_in_query_are_literal(session: AsyncSession) -> None:
    await _new(session, title="100% CPU")
    await _new(session, title="100 users")
    found, _ = await service.list_issues(
        session=session, filters=service.IssueFilter(q="100%"), limit=10, offset=0
    )
    assert [i.title for i in found] == ["100% CPU"]


async def test_sla_clock_records_at_risk_breach_and_escalation(session: AsyncSession) -> None:
    issue_id = await _new(session, priority="P1")
    assert await service.refresh_sla(session=session, matrix=MATRIX, now=T0) == []
    changed = await service.refresh_sla(
        session=session, matrix=MATRIX, now=T0 + timedelta(minutes=50)
    )
    assert [i.id for i in changed] == [issue_id]
    await service.refresh_sla(session=session, matrix=MATRIX, now=T0 + timedelta(minutes=61))
    # a second pass with nothing new records nothing
    await service.refresh_sla(session=session, matrix=MATRIX, now=T0 + timedelta(minutes=62))
    entries = await service.timeline(session=session, issue_id=issue_id)
    sla = [(e.kind, e.data.get("to") or e.data.get("step")) for e in entries[1:]]
    assert sla == [
        ("sla", "at_risk"),
        ("escalation", "executive team"),
        ("sla", "breached"),
        ("escalation", "24/7 on-call engineering"),
    ]
    issue = await service.get_issue(session=session, issue_id=issue_id)
    assert issue.sla_state == "breached" and issue.escalation_level == 2


async def test_the_clock_skips_issues_breached_at_their_last_escalation_step(
    session: AsyncSession,
) -> None:
    done = await _new(session, priority="P1")
    await service.refresh_sla(session=session, matrix=MATRIX, now=T0 + timedelta(minutes=61))
    young = await _new(session, priority="P1")
    await session.flush()
    session.expunge_all()
    await service.refresh_sla(session=session, matrix=MATRIX, now=T0 + timedelta(minutes=62))
    loaded = {o.id for o in session.identity_map.values() if isinstance(o, Issue)}
    assert young in loaded and done not in loaded
    issue = await service.get_issue(session=session, issue_id=done)
    assert issue.sla_state == "breached" and issue.escalation_level == 2


async def test_resolved_issue_is_not_rechecked(session: AsyncSession) -> None:
    issue_id = await _new(session, priority="P1")
    for to in (Status.investigating, Status.resolved):
        await service.transition(
            session=session,
            matrix=MATRIX,
            issue_id=issue_id,
            to=to,
            reason=None,
            actor="x",
            now=T0 + timedelta(minutes=5),
        )
    changed = await service.refresh_sla(session=session, matrix=MATRIX, now=T0 + timedelta(hours=5))
    assert changed == []

"""The store and the attach step on SQLite and PostgreSQL: dedup, resolve, priorities."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.config import HypercareConfig
from hypercare.feedback import service
from hypercare.feedback.config import DEFAULT_PRIORITIES
from hypercare.feedback.drafts import SignalDraft
from hypercare.feedback.models import IntakeDelivery, SignalGroup
from hypercare.feedback.priorities import suggest
from hypercare.triage import service as triage
from hypercare.triage.models import Issue
from hypercare.triage.rules import Matrix, Status


def _draft(status: str | None = "firing", key: str = "am:fp1", **kw: object) -> SignalDraft:
    return SignalDraft(
        kind="system",
        source=str(kw.pop("source", "alertmanager")),
        summary="HighErrorRate: checkout 5xx",
        dedup_key=key,
        raw={"labels": {"alertname": "HighErrorRate"}},
        status=status,  # type: ignore[arg-type]
        severity=kw.pop("severity", "critical"),  # type: ignore[arg-type]
        component="checkout",
        **kw,  # type: ignore[arg-type]
    )


async def _ingest(session: AsyncSession, matrix: Matrix, *drafts: SignalDraft) -> service.Ingested:
    return await service.ingest(
        session=session, matrix=matrix, priorities=DEFAULT_PRIORITIES, drafts=list(drafts)
    )


async def test_same_key_updates_one_open_issue(
    session: AsyncSession, config: HypercareConfig
) -> None:
    matrix = Matrix(config.triage)
    first = await _ingest(session, matrix, _draft())
    again = await _ingest(session, matrix, _draft(), _draft())
    assert len(first.issue_ids) == 1 and again.issue_ids == first.issue_ids
    issue = await triage.get_issue(session=session, issue_id=first.issue_ids[0])
    assert issue.priority == "P1" and issue.status == Status.new.value
    assert issue.component == "checkout" and "source:alertmanager" in issue.labels
    group = await session.scalar(select(SignalGroup))
    assert group is not None and group.count == 3 and group.status == "firing"
    kinds = [e.kind for e in await triage.timeline(session=session, issue_id=issue.id)]
    assert kinds.count("signal") == 3 and kinds[0] == "created"


async def test_resolved_marks_the_group_and_records_it(
    session: AsyncSession, config: HypercareConfig
) -> None:
    matrix = Matrix(config.triage)
    opened = await _ingest(session, matrix, _draft())
    resolved = await _ingest(session, matrix, _draft("resolved"))
    assert resolved.issue_ids == opened.issue_ids
    group = await session.scalar(select(SignalGroup))
    assert group is not None and group.status == "resolved"
    entries = await triage.timeline(session=session, issue_id=opened.issue_ids[0])
    assert entries[-1].kind == "signal_resolved" and "resolved" in entries[-1].text
    # the issue itself stays where people put it: the source only reports
    issue = await triage.get_issue(session=session, issue_id=opened.issue_ids[0])
    assert issue.status == Status.new.value


async def test_resolve_for_nothing_open_stands_alone(
    session: AsyncSession, config: HypercareConfig
) -> None:
    done = await _ingest(session, Matrix(config.triage), _draft("resolved", key="never-fired"))
    assert done.issue_ids == [] and done.signals[0].issue_id is None
    assert await session.scalar(select(Issue)) is None


async def test_a_closed_issue_is_not_reused(session: AsyncSession, config: HypercareConfig) -> None:
    matrix = Matrix(config.triage)
    first = await _ingest(session, matrix, _draft())
    await triage.transition(
        session=session,
        matrix=matrix,
        issue_id=first.issue_ids[0],
        to=Status.closed,
        reason="duplicate",
        actor="t",
    )
    second = await _ingest(session, matrix, _draft())
    assert second.issue_ids and second.issue_ids != first.issue_ids


async def test_signals_without_issue_and_linked_notes(
    session: AsyncSession, config: HypercareConfig
) -> None:
    matrix = Matrix(config.triage)
    score = _draft(None, key="nps:1", source="nps", create_issue=False, score=9)
    opened = await _ingest(session, matrix, _draft())
    note = _draft(None, key="team:1", source="observation", issue_id=opened.issue_ids[0])
    done = await _ingest(session, matrix, score, note)
    assert done.signals[0].issue_id is None
    assert done.signals[1].issue_id == opened.issue_ids[0]
    signals, groups = await service.issue_signals(session=session, issue_id=opened.issue_ids[0])
    assert len(signals) == 2 and len(groups) == 1
    rows, total = await service.list_signals(
        session=session, filters=service.SignalFilter(source=("nps",)), limit=10, offset=0
    )
    assert total == 1 and rows[0].score == 9


def test_priority_suggestion(config: HypercareConfig) -> None:
    matrix = Matrix(config.triage)
    table = {"sentry": {"error": "P3", "*": "P2"}, "*": {"critical": "P1"}, "odd": {"*": "P9"}}
    assert suggest(table, matrix, source="sentry", severity="ERROR") == "P3"
    assert suggest(table, matrix, source="sentry", severity="fatal") == "P2"
    assert suggest(table, matrix, source="grafana", severity="critical") == "P1"
    assert suggest(table, matrix, source="grafana", severity=None) == matrix.default_priority
    assert suggest(table, matrix, source="odd", severity="x") == matrix.default_priority
    assert suggest(DEFAULT_PRIORITIES, matrix, source="feature", severity=None) == "P4"


async def test_ingest_many_is_ingest_one_delivery_after_the_other(
    session: AsyncSession, config: HypercareConfig
) -> None:
    """Group commit stores several deliveries with one `ingest_many`: a key opened by the
    first delivery is deduplicated in the second and resolved in the third."""
    matrix = Matrix(config.triage)
    deliveries = [
        service.record_delivery(
            session,
            channel="integration:am",
            source="alertmanager",
            headers={},
            body=b"{}",
            outcome=service.ACCEPTED,
        )
        for _ in range(3)
    ]
    drafts = [[_draft(), _draft(key="am:other")], [_draft()], [_draft("resolved")]]
    done = await service.ingest_many(
        session=session,
        matrix=matrix,
        priorities=DEFAULT_PRIORITIES,
        batches=[
            service.Batch(d, delivery) for d, delivery in zip(drafts, deliveries, strict=True)
        ],
    )
    assert [len(d.signals) for d in done] == [2, 1, 1]
    assert [delivery.signal_count for delivery in deliveries] == [2, 1, 1]
    first, other = done[0].issue_ids
    assert other != first
    assert done[1].issue_ids == [first] and done[2].issue_ids == [first]
    ids = [s.id for d in done for s in d.signals]
    assert ids == sorted(ids) and all(
        s.delivery_id == delivery.id
        for d, delivery in zip(done, deliveries, strict=True)
        for s in d.signals
    )
    # the deliveries are stored in order (on SQLite the first alone, the others after it in
    # one INSERT with ids given beforehand)
    stored = list(await session.scalars(select(IntakeDelivery.id).order_by(IntakeDelivery.id)))
    assert stored == [delivery.id for delivery in deliveries] == sorted(stored)
    group = await session.scalar(select(SignalGroup).where(SignalGroup.dedup_key == "am:fp1"))
    assert group is not None and (group.count, group.status) == (3, "resolved")
    kinds = [e.kind for e in await triage.timeline(session=session, issue_id=first)]
    assert kinds.count("signal") == 2 and kinds.count("signal_resolved") == 1

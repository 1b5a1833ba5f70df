"""Signal storage, queries and dead letters. Keyword-only session; never commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import NotFound
from hypercare.feedback.attach import AttachStep, BatchAttachStep, open_groups
from hypercare.feedback.attach import attach as dedup_attach
from hypercare.feedback.drafts import SignalDraft
from hypercare.feedback.models import (
    IntakeDelivery,
    RejectedRead,
    Signal,
    SignalGroup,
    SignalGroupRead,
    SignalRead,
)
from hypercare.feedback.samples import TEST_LABEL, mark
from hypercare.store.base import utcnow
from hypercare.store.ids import adopt, assign_ids, insert_many, insert_new, preassign_new
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, IssueRead, TimelineEntry
from hypercare.triage.rules import Matrix

ACCEPTED, REJECTED, REPLAYED = "accepted", "rejected", "replayed"


@dataclass(frozen=True, slots=True)
class SignalFilter:
    kind: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    issue_id: int | None = None
    status: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Ingested:
    signals: list[Signal]
    issue_ids: list[int]


def record_delivery(
    session: AsyncSession,
    *,
    channel: str,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    outcome: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> IntakeDelivery:
    """Keep one delivery as received (headers already redacted by the caller)."""
    row = IntakeDelivery(
        channel=channel[:80],
        source=source[:40],
        received_at=now or utcnow(),
        headers=dict(headers),
        body=body,
        outcome=outcome,
        reason=reason,
        signal_count=0,
    )
    session.add(row)
    return row


@dataclass(frozen=True, slots=True)
class Batch:
    """One delivery's drafts for `ingest_many`."""

    drafts: Sequence[SignalDraft]
    delivery: IntakeDelivery | None = None
    integration_id: str | None = None
    now: datetime | None = None
    # a test delivery (see `hypercare.feedback.samples`): its signals are marked and join
    # no issue
    test: bool = False


async def ingest(
    *,
    session: AsyncSession,
    matrix: Matrix,
    priorities: Mapping[str, Mapping[str, str]],
    drafts: Sequence[SignalDraft],
    delivery: IntakeDelivery | None = None,
    integration_id: str | None = None,
    now: datetime | None = None,
    attach: AttachStep | None = None,
    test: bool = False,
) -> Ingested:
    """Store each draft as a signal and run the attach step on it (`attach`, or the
    dedup-only step when None).

    The drafts of a `test` delivery (see `hypercare.feedback.samples`) are marked (label
    ``test``, own dedup key) and skip the attach step: they join no issue and open none.

    The signals of one delivery are inserted together and their open dedup groups loaded in
    one query, so a notification of many alerts costs a handful of statements."""
    (done,) = await ingest_many(
        session=session,
        matrix=matrix,
        priorities=priorities,
        batches=[Batch(drafts, delivery, integration_id, now, test)],
        attach=attach,
    )
    return done


async def ingest_many(
    *,
    session: AsyncSession,
    matrix: Matrix,
    priorities: Mapping[str, Mapping[str, str]],
    batches: Sequence[Batch],
    attach: AttachStep | None = None,
) -> list[Ingested]:
    """`ingest` for several deliveries at once, with the same outcome as ingesting them one
    after the other in this order: their signals are inserted in one statement, their open
    dedup groups loaded in one query and the attach step's writes flushed together (group
    commit hands the writer several deliveries at a time)."""
    fallback = utcnow()
    unsaved: list[IntakeDelivery] = []
    for batch in batches:
        if batch.delivery is not None:
            batch.delivery.signal_count = len(batch.drafts)
            if batch.delivery.id is None:
                unsaved.append(batch.delivery)
    linked_ids = {d.issue_id for b in batches for d in b.drafts if d.issue_id is not None}
    with session.no_autoflush:  # the new deliveries go in below, as plain rows
        for linked in sorted(linked_ids):
            await triage.get_issue(session=session, issue_id=linked)  # 404 if absent
    batches = [replace(b, drafts=mark(b.drafts)) if b.test else b for b in batches]
    stored = [
        [_signal(d, batch.integration_id, None, batch.now or fallback) for d in batch.drafts]
        for batch in batches
    ]
    every = [signal for signals in stored for signal in signals]
    # the deliveries and their signals go in as plain rows, not through a flush (see
    # `hypercare.store.ids`)
    for delivery in unsaved:
        if delivery in session:
            session.expunge(delivery)
    keys = [
        s.dedup_key
        for b, signals in zip(batches, stored, strict=True)
        if not b.test
        for s in signals
    ]
    step = attach or dedup_attach
    work = [
        (signal, d.create_issue)
        for batch, signals in zip(batches, stored, strict=True)
        if not batch.test
        for signal, d in zip(signals, batch.drafts, strict=True)
    ]
    unwritten: list[tuple[Any, Sequence[Any]]] = []
    if _is_sqlite(session):
        # the first delivery takes the write lock; the others' ids, and the signals', follow
        locked = await insert_new(session, IntakeDelivery, unsaved, write_locked=False)
        _set_deliveries(batches, stored)
        await insert_new(session, Signal, every, write_locked=locked)
    else:
        # their ids in one statement, which also takes the dedup keys' advisory locks (sorted:
        # no deadlocks) until commit, so two concurrent first sightings of one key open one
        # issue, not two (SQLite's single writer serialises them)
        await assign_ids(session, [(IntakeDelivery, unsaved), (Signal, every)], lock=keys)
        _set_deliveries(batches, stored)
        unwritten = [(IntakeDelivery, unsaved), (Signal, every)]
        if not (work and isinstance(step, BatchAttachStep)):
            await insert_many(session, unwritten)
            unwritten = []
        # else their rows go in with the batch step's own at its end (one statement less, and
        # the signals are inserted as decided instead of inserted, then updated)
    if not isinstance(step, BatchAttachStep):
        # that step changes the signals through the session (a batch step writes what it
        # decides for them itself)
        adopt(session, every)
    known = await open_groups(session=session, keys=keys)
    attached: list[Issue | None]
    if isinstance(step, BatchAttachStep):
        # the whole group commit decided together: one context load for all its signals
        attached = await step.attach_many(
            session=session,
            matrix=matrix,
            signals=work,
            priorities=priorities,
            known=known,
            unwritten=unwritten,
        )
    else:
        attached = []
        for signal, create in work:
            attached.append(
                await step(
                    session=session,
                    matrix=matrix,
                    signal=signal,
                    priorities=priorities,
                    create=create,
                    known=known,
                )
            )
    outcome = iter(attached)
    done: list[Ingested] = []
    for batch, signals in zip(batches, stored, strict=True):
        issues: list[int] = []
        if not batch.test:
            for _ in signals:
                issue = next(outcome)
                if issue is not None and issue.id not in issues:
                    issues.append(issue.id)
        done.append(Ingested(signals, issues))
    if every:
        # the signals are written: the write lock is held
        await preassign_new(session, TimelineEntry, SignalGroup)
    await session.flush()
    return done


def _set_deliveries(batches: Sequence[Batch], stored: Sequence[Sequence[Signal]]) -> None:
    for batch, signals in zip(batches, stored, strict=True):
        if batch.delivery is not None:
            for signal in signals:
                signal.delivery_id = batch.delivery.id


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _signal(
    d: SignalDraft, integration_id: str | None, delivery_id: int | None, now: datetime
) -> Signal:
    d = _without_nul(d)
    return Signal(
        kind=d.kind,
        source=d.source,
        integration_id=integration_id,
        delivery_id=delivery_id,
        occurred_at=d.occurred_at or now,
        received_at=now,
        summary=d.summary[:500],
        body=d.body,
        severity=d.severity,
        status=d.status,
        component=d.component,
        service=d.service,
        route=d.route,
        consumer=d.consumer,
        request_ids=list(d.request_ids),
        trace_id=d.trace_id,
        user_ref=d.user_ref,
        labels=dict(d.labels),
        score=d.score,
        dedup_key=d.dedup_key[:400],
        issue_id=d.issue_id,
        raw=d.raw,
    )


def not_test() -> ColumnElement[bool]:
    """SQL condition: the signal is not a test event (label ``test`` absent or not "true").

    Test signals attach to no issue, so issue-based queries (MTTx, SLA, reports) never see
    them; queries over signals themselves add this condition."""
    label = Signal.labels[TEST_LABEL].as_string()
    return or_(label.is_(None), label != "true")


async def last_integration_signals(
    *, session: AsyncSession, integration_ids: Sequence[str]
) -> dict[str, Signal]:
    """The newest signal of each integration (test or not), in one query."""
    if not integration_ids:
        return {}
    newest = (
        select(func.max(Signal.id))
        .where(Signal.integration_id.in_(integration_ids))
        .group_by(Signal.integration_id)
    )
    rows = await session.scalars(select(Signal).where(Signal.id.in_(newest)))
    return {r.integration_id: r for r in rows if r.integration_id is not None}


def _clean(value: str) -> str:
    return value.replace("\x00", "")


def _without_nul(d: SignalDraft) -> SignalDraft:
    """PostgreSQL text cannot hold NUL characters; payloads sometimes do. The raw fragment
    keeps them (JSON escapes them); the normalised fields drop them."""
    fields: dict[str, Any] = {}
    for name in (
        "summary",
        "body",
        "severity",
        "component",
        "service",
        "route",
        "consumer",
        "trace_id",
        "user_ref",
        "dedup_key",
    ):
        value = getattr(d, name)
        if isinstance(value, str) and "\x00" in value:
            fields[name] = _clean(value)
    if any("\x00" in k or "\x00" in v for k, v in d.labels.items()):
        fields["labels"] = {_clean(k): _clean(v) for k, v in d.labels.items()}
    if any("\x00" in r for r in d.request_ids):
        fields["request_ids"] = tuple(_clean(r) for r in d.request_ids)
    return replace(d, **fields) if fields else d


async def list_signals(
    *, session: AsyncSession, filters: SignalFilter, limit: int, offset: int
) -> tuple[list[Signal], int]:
    """Signals matching `filters`, newest first."""
    query = select(Signal)
    if filters.kind:
        query = query.where(Signal.kind.in_(filters.kind))
    if filters.source:
        query = query.where(Signal.source.in_(filters.source))
    if filters.issue_id is not None:
        query = query.where(Signal.issue_id == filters.issue_id)
    if filters.status:
        query = query.where(Signal.status.in_(filters.status))
    if filters.start is not None:
        query = query.where(Signal.received_at >= filters.start)
    if filters.end is not None:
        query = query.where(Signal.received_at < filters.end)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(Signal.received_at.desc(), Signal.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


async def get_signal(*, session: AsyncSession, signal_id: int) -> Signal:
    row = await session.get(Signal, signal_id)
    if row is None:
        raise NotFound(f"no signal with id {signal_id}")
    return row


async def issue_signals(
    *, session: AsyncSession, issue_id: int, limit: int = 200
) -> tuple[list[Signal], list[SignalGroup]]:
    """The newest signals of one issue and its dedup groups."""
    signals = await session.scalars(
        select(Signal)
        .where(Signal.issue_id == issue_id)
        .order_by(Signal.received_at.desc(), Signal.id.desc())
        .limit(limit)
    )
    groups = await session.scalars(
        select(SignalGroup).where(SignalGroup.issue_id == issue_id).order_by(SignalGroup.id)
    )
    return list(signals), list(groups)


async def survey_scores(
    *, session: AsyncSession, start: datetime, end: datetime
) -> list[tuple[str, datetime, int]]:
    rows = await session.execute(
        select(Signal.source, Signal.occurred_at, Signal.score).where(
            Signal.source.in_(("nps", "csat")),
            Signal.score.is_not(None),
            Signal.occurred_at >= start,
            Signal.occurred_at < end,
            not_test(),
        )
    )
    return [(src, at, score) for src, at, score in rows if score is not None]


# --- dead letters ----------------------------------------------------------------------------


async def list_rejected(
    *, session: AsyncSession, include_replayed: bool, limit: int, offset: int
) -> tuple[list[IntakeDelivery], int]:
    outcomes = (REJECTED, REPLAYED) if include_replayed else (REJECTED,)
    query = select(IntakeDelivery).where(IntakeDelivery.outcome.in_(outcomes))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(IntakeDelivery.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


async def get_delivery(*, session: AsyncSession, delivery_id: int) -> IntakeDelivery:
    row = await session.get(IntakeDelivery, delivery_id)
    if row is None:
        raise NotFound(f"no intake delivery with id {delivery_id}")
    return row


def rejected_read(row: IntakeDelivery, *, body_limit: int = 65_536) -> RejectedRead:
    return RejectedRead(
        id=row.id,
        channel=row.channel,
        source=row.source,
        received_at=row.received_at,
        reason=row.reason,
        headers=dict(row.headers or {}),
        body=row.body[:body_limit].decode("utf-8", errors="replace"),
        body_bytes=len(row.body),
        outcome=row.outcome,
        replayed_at=row.replayed_at,
    )


async def issue_section(session: AsyncSession, read: IssueRead) -> dict[str, object]:
    """The issue detail's feedback section (`IssueDetail`'s fields): its newest signals and
    dedup groups."""
    signals, groups = await issue_signals(session=session, issue_id=read.id)
    return {
        "signals": [SignalRead.model_validate(s) for s in signals],
        "signal_groups": [SignalGroupRead.model_validate(g) for g in groups],
    }

"""Database reads and writes of outside messages. Functions never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.comms import digest, rules
from hypercare.comms.config import CommsConfig
from hypercare.feedback import service as feedback
from hypercare.feedback.models import Signal
from hypercare.feedback.service import not_test
from hypercare.response.config import ResponseConfig
from hypercare.response.models import Delivery
from hypercare.response.rules import DeliveryState
from hypercare.telemetry import query
from hypercare.telemetry.live import LiveStore
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, TimelineEntry
from hypercare.triage.rules import OPEN

MAX_REPORTS = 1000  # linked user reports read for one issue


async def fixed_messages(
    *,
    session: AsyncSession,
    config: CommsConfig,
    response: ResponseConfig,
    entries: Sequence[tuple[TimelineEntry, Issue]],
    now: datetime,
) -> list[Delivery]:
    """For each committed entry that resolves or verifies an issue (`comms.fixed.on`): a
    pending email delivery of the "fixed" message to every reporter of its linked user
    feedback who left an email address and was not told before (once per issue and
    address, whatever happens after), and a timeline entry saying how many."""
    fixed = config.fixed
    if fixed is None or response.channel(fixed.channel) is None:
        return []
    made: list[Delivery] = []
    for entry, issue in entries:
        if not rules.sends_fixed(entry.kind, entry.data or {}, fixed.on):
            continue
        rows = await session.execute(
            select(Signal.id, Signal.user_ref, Signal.summary, Signal.occurred_at)
            .where(Signal.issue_id == issue.id, Signal.kind == "user")
            .order_by(Signal.id)
            .limit(MAX_REPORTS)
        )
        reports = [
            rules.Report(int(i), contact, str(summary), at)
            for i, ref, summary, at in rows
            if (contact := rules.contact_of(ref)) is not None
        ]
        if not reports:
            continue
        told = await session.scalars(
            select(Delivery.recipient).where(
                Delivery.issue_id == issue.id, Delivery.event == rules.FIXED_EVENT
            )
        )
        to_tell = rules.recipients(reports, told)
        for report in to_tell:
            message = rules.fixed_message(
                subject=fixed.subject,
                body=fixed.body,
                report=report,
                issue_id=issue.id,
                title=issue.title,
                component=issue.component,
                status=str((entry.data or {}).get("to") or issue.status),
            )
            delivery = Delivery(
                issue_id=issue.id,
                entry_id=entry.id,
                event=rules.FIXED_EVENT,
                # one delivery per (entry, channel): the report's own address of the channel
                channel=f"{fixed.channel}>{report.signal_id}"[:80],
                channel_type="email",
                recipient=report.contact[:300],
                message=message,
                state=DeliveryState.pending.value,
                attempts=0,
                idempotency_key=uuid.uuid4().hex,
                created_at=now,
                next_attempt_at=now,
            )
            session.add(delivery)
            made.append(delivery)
        if to_tell:
            n = len(to_tell)
            triage.record(
                session,
                issue,
                actor="hypercare",
                kind="fixed_message",
                text=f'"Fixed" message sent to {n} reporter{"" if n == 1 else "s"} '
                "of linked feedback",
                data={"signals": [r.signal_id for r in to_tell], "channel": fixed.channel},
                at=now,
            )
    await session.flush()
    return made


# --- stakeholder digest -------------------------------------------------------------------

MAX_DIGEST_ISSUES = 10_000  # issues read for one digest (open ones, and the period's)


async def digest_facts(
    *,
    session: AsyncSession,
    live: LiveStore,
    levels: Sequence[str],
    start: datetime,
    end: datetime,
    timezone: str,
) -> digest.DigestFacts:
    """What the digest of [start, end) says, read from the tracker, telemetry rollups and
    the intake; the period before (as long) is read for the trends."""
    before = start - (end - start)
    issues = await session.scalars(
        select(Issue)
        .where(
            or_(
                Issue.status.in_([s.value for s in OPEN]),
                Issue.created_at >= start,
                Issue.resolved_at >= start,
            )
        )
        .order_by(Issue.id.desc())
        .limit(MAX_DIGEST_ISSUES)
    )
    apis = await query.summary(session, live, start=start.timestamp(), end=end.timestamp())

    async def tickets(a: datetime, b: datetime) -> int:
        found = await session.scalar(
            select(func.count()).where(
                Signal.kind == "user",
                Signal.source.not_in(("nps", "csat")),
                Signal.occurred_at >= a,
                Signal.occurred_at < b,
                not_test(),
            )
        )
        return int(found or 0)

    return digest.DigestFacts(
        start=start,
        end=end,
        timezone=timezone,
        levels=list(levels),
        issues=[
            digest.IssueFacts(
                priority=i.priority,
                status=i.status,
                sla_state=i.sla_state,
                open=i.status in {s.value for s in OPEN},
                created_at=i.created_at,
                impact_started_at=i.impact_started_at,
                detected_at=i.detected_at,
                acknowledged_at=i.acknowledged_at,
                resolved_at=i.resolved_at,
            )
            for i in issues
        ],
        apis=[
            digest.ApiFacts(a.key, a.requests, a.error_rate, round(a.error_rate * a.requests))
            for a in apis
        ],
        tickets=await tickets(start, end),
        tickets_before=await tickets(before, start),
        scores=[
            (k, s)
            for k, _, s in await feedback.survey_scores(session=session, start=start, end=end)
        ],
        scores_before=[
            (k, s)
            for k, _, s in await feedback.survey_scores(session=session, start=before, end=start)
        ],
    )

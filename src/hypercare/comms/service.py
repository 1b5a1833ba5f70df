"""Database reads and writes of outside messages. Functions never commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.comms import rules
from hypercare.comms.config import CommsConfig
from hypercare.feedback.models import Signal
from hypercare.response.config import ResponseConfig
from hypercare.response.models import Delivery
from hypercare.response.rules import DeliveryState
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, TimelineEntry

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

"""Database reads and writes of outside messages. Functions never commit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.comms import digest, rules
from hypercare.comms.config import CommsConfig
from hypercare.comms.models import Subscriber
from hypercare.errors import NotFound
from hypercare.feedback import service as feedback
from hypercare.feedback.models import Signal
from hypercare.feedback.service import not_test
from hypercare.response.channels import recipient
from hypercare.response.config import ResponseConfig
from hypercare.response.models import Delivery
from hypercare.response.rules import DeliveryState
from hypercare.response.service import pending_delivery
from hypercare.status.models import StatusIncident, StatusIncidentUpdate, StatusMaintenance
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
            delivery = pending_delivery(
                issue_id=issue.id,
                entry_id=entry.id,
                event=rules.FIXED_EVENT,
                # one delivery per (entry, channel): the report's own address of the channel
                channel=f"{fixed.channel}>{report.signal_id}"[:80],
                channel_type="email",
                recipient=report.contact[:300],
                message=message,
                now=now,
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


async def digest_deliveries(
    *,
    session: AsyncSession,
    response: ResponseConfig,
    channels: Sequence[str],
    message: dict[str, Any],
    now: datetime,
) -> list[Delivery]:
    """A pending delivery of one digest to each of `channels` (configured response channels),
    in the caller's transaction: the response dispatcher sends it with retries and dead
    letters. Its channel ``<name>>digest.<unix time>`` addresses the configured channel and
    is unique per digest."""
    configured = [(n, c) for n in dict.fromkeys(channels) if (c := response.channel(n))]
    made = [
        message_delivery(
            channel=f"{name}>digest.{int(now.timestamp())}",
            channel_type=channel.type,
            recipient=recipient(channel),
            message=message,
            now=now,
            event=DIGEST_EVENT,
        )
        for name, channel in configured
    ]
    session.add_all(made)
    await session.flush()
    return made


async def digest_outcomes(*, session: AsyncSession) -> dict[str, int]:
    """How many digest deliveries are in each state (sent, dead, failed: to be retried,
    pending): the digest's counters, from the outbox itself."""
    rows = await session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.event == DIGEST_EVENT, Delivery.issue_id.is_(None))
        .group_by(Delivery.state)
    )
    found = {str(state): int(n) for state, n in rows}
    return {s.value: found.get(s.value, 0) for s in DeliveryState}


# --- subscribers --------------------------------------------------------------------------

SUBSCRIBER_CHANNEL = "subscriber"  # webhook deliveries' channel prefix: subscriber>ID.KEY


async def subscribe(
    *, session: AsyncSession, kind: str, target: str, components: Sequence[str], now: datetime
) -> tuple[Subscriber, bool]:
    """The subscriber of `target` (made, or its components replaced), and whether it still
    needs a confirmation (an email not confirmed yet)."""
    found = await session.scalar(
        select(Subscriber).where(Subscriber.kind == kind, Subscriber.target == target)
    )
    if found is None:
        found = Subscriber(
            kind=kind,
            target=target,
            components=list(components),
            created_at=now,
            confirmed_at=now if kind == "webhook" else None,
        )
        session.add(found)
        await session.flush()
    elif found.confirmed_at is None:
        found.components = list(components)
    return found, found.confirmed_at is None


async def confirmation_sent(
    *, session: AsyncSession, channel: str, subscriber_id: int, since: datetime
) -> bool:
    """A confirmation to this subscriber was made since `since` (not sent again: the
    form cannot be used to flood an address)."""
    found = await session.scalar(
        select(Delivery.id)
        .where(
            Delivery.entry_id == 0,
            Delivery.channel.startswith(f"{channel}>c{subscriber_id}.", autoescape=True),
            Delivery.created_at >= since,
        )
        .limit(1)
    )
    return found is not None


async def confirm(*, session: AsyncSession, subscriber_id: int, now: datetime) -> Subscriber:
    found = await session.get(Subscriber, subscriber_id)
    if found is None:
        raise NotFound("this subscription no longer exists; subscribe again")
    if found.confirmed_at is None:
        found.confirmed_at = now
    return found


async def unsubscribe(*, session: AsyncSession, subscriber_id: int) -> bool:
    found = await session.get(Subscriber, subscriber_id)
    if found is None:
        return False
    await session.delete(found)
    return True


async def list_subscribers(
    *, session: AsyncSession, limit: int, offset: int
) -> tuple[list[Subscriber], int]:
    total = await session.scalar(select(func.count()).select_from(Subscriber)) or 0
    rows = await session.scalars(
        select(Subscriber).order_by(Subscriber.id).limit(limit).offset(offset)
    )
    return list(rows), int(total)


SUBSCRIPTION_EVENT = "subscription"
DIGEST_EVENT = "digest"


def message_delivery(
    *,
    channel: str,
    channel_type: str,
    recipient: str,
    message: dict[str, Any],
    now: datetime,
    event: str = SUBSCRIPTION_EVENT,
) -> Delivery:
    """A delivery of no issue (a subscriber's message, a digest) for the response
    dispatcher; its `channel` is unique per message (entry 0)."""
    return pending_delivery(
        issue_id=None,
        entry_id=0,
        event=event,
        channel=channel[:80],
        channel_type=channel_type,
        recipient=recipient[:300],
        message=message,
        now=now,
    )


MAX_SUBSCRIBERS = 10_000  # read per pass
RECENT = timedelta(days=1)  # incident updates and maintenance windows looked at


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing subscribers are told: `key` names it in their deliveries' channel."""

    key: str
    components: list[str]
    at: datetime
    subject: str
    text: str
    payload: dict[str, Any]


async def notices(*, session: AsyncSession, now: datetime, notice_seconds: float) -> list[Notice]:
    """Updates of published incidents and the current phase of maintenance windows, of
    the last day (bounded)."""
    out: list[Notice] = []
    rows = await session.execute(
        select(StatusIncidentUpdate, StatusIncident)
        .join(StatusIncident, StatusIncident.id == StatusIncidentUpdate.incident_id)
        .where(StatusIncident.published.is_(True), StatusIncidentUpdate.created_at >= now - RECENT)
        .order_by(StatusIncidentUpdate.id)
        .limit(500)
    )
    for update, incident in rows:
        out.append(
            Notice(
                key=f"u{update.id}",
                components=list(incident.components or []),
                at=update.created_at,
                subject=f"{incident.name}: {update.status}",
                text=update.body,
                payload={
                    "incident": {
                        "id": incident.id,
                        "name": incident.name,
                        "status": incident.status,
                        "impact": incident.impact,
                        "components": list(incident.components or []),
                    },
                    "update": {
                        "id": update.id,
                        "status": update.status,
                        "body": update.body,
                        "created_at": update.created_at.isoformat(),
                    },
                },
            )
        )
    windows = await session.scalars(
        select(StatusMaintenance)
        .where(StatusMaintenance.scheduled_until >= now - RECENT)
        .order_by(StatusMaintenance.id)
        .limit(500)
    )
    for m in windows:
        phase = rules.maintenance_phase(
            start=m.scheduled_for.timestamp(),
            end=m.scheduled_until.timestamp(),
            completed=m.completed_at.timestamp() if m.completed_at else None,
            now=now.timestamp(),
            notice=notice_seconds,
        )
        if phase is None:
            continue
        words = {"before": "starts soon", "start": "has started", "end": "is over"}[phase]
        out.append(
            Notice(
                key=f"m{m.id}.{phase}",
                components=list(m.components or []),
                at=now,
                subject=f"Maintenance {words}: {m.name}",
                text=(
                    f"{m.name}: {m.scheduled_for.isoformat()} to "
                    f"{m.scheduled_until.isoformat()}.\n\n{m.body}"
                ).strip(),
                payload={
                    "maintenance": {
                        "id": m.id,
                        "name": m.name,
                        "components": list(m.components or []),
                        "scheduled_for": m.scheduled_for.isoformat(),
                        "scheduled_until": m.scheduled_until.isoformat(),
                    },
                    "phase": phase,
                },
            )
        )
    return out


async def notify_subscribers(
    *,
    session: AsyncSession,
    email_channel: str | None,
    page: str,
    found: Sequence[Notice],
    unsubscribe_url: Callable[[int], str],
    now: datetime,
) -> list[Delivery]:
    """A pending delivery of each notice to each confirmed subscriber of its components,
    confirmed before it happened; each (subscriber, notice) once (its delivery channel
    names both, and is unique)."""
    if not found:
        return []
    subs = list(
        await session.scalars(
            select(Subscriber)
            .where(Subscriber.confirmed_at.is_not(None))
            .order_by(Subscriber.id)
            .limit(MAX_SUBSCRIBERS)
        )
    )
    wanted: list[tuple[str, Subscriber, Notice]] = []
    for notice in found:
        for sub in subs:
            if sub.kind == "email" and email_channel is None:
                continue
            if sub.confirmed_at is None or sub.confirmed_at > notice.at:
                continue
            if not rules.wants(sub.components or [], notice.components):
                continue
            base = email_channel if sub.kind == "email" else SUBSCRIBER_CHANNEL
            wanted.append((f"{base}>s{sub.id}.{notice.key}"[:80], sub, notice))
    made: list[Delivery] = []
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        done = set(
            await session.scalars(
                select(Delivery.channel).where(
                    Delivery.entry_id == 0, Delivery.channel.in_([c for c, _, _ in chunk])
                )
            )
        )
        for channel, sub, notice in chunk:
            if channel in done:
                continue
            unsub = unsubscribe_url(sub.id)
            if "update" in notice.payload:
                payload = rules.incident_payload(
                    page=page,
                    incident=notice.payload["incident"],
                    update=notice.payload["update"],
                    unsubscribe_url=unsub,
                )
            else:
                payload = rules.maintenance_payload(
                    page=page,
                    maintenance=notice.payload["maintenance"],
                    phase=notice.payload["phase"],
                    unsubscribe_url=unsub,
                )
            message = rules.update_message(
                page=page,
                subject=notice.subject,
                text=notice.text,
                unsubscribe_url=unsub,
                payload=payload,
            )
            if sub.kind == "email":
                message["to"] = [sub.target]
            else:
                message["url"] = sub.target
            delivery = message_delivery(
                channel=channel,
                channel_type="email" if sub.kind == "email" else "webhook",
                recipient=sub.target,
                message=message,
                now=now,
            )
            session.add(delivery)
            made.append(delivery)
    await session.flush()
    return made

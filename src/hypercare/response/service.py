"""Response reads and writes: the outbox pass, deliveries, acknowledgement. Functions take a
keyword-only session and never commit (the job or request that calls them does)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import InvalidInput, NotFound
from hypercare.feedback.models import Signal
from hypercare.response import rules
from hypercare.response.channels import recipient
from hypercare.response.config import ResponseConfig, clock_time
from hypercare.response.models import (
    ChannelSecret,
    Delivery,
    DeliveryRead,
    Escalation,
    OncallOverride,
    OverrideCreate,
    OverrideRead,
    ResponseSetting,
    UsedAckLink,
)
from hypercare.response.oncall import Override, on_call
from hypercare.response.roster import schedule_of
from hypercare.response.rules import AckClaim, DeliveryState
from hypercare.triage import service as triage_service
from hypercare.triage.models import Issue, TimelineEntry
from hypercare.triage.rules import Matrix

CURSOR = "outbox_cursor"
KEY = "signing_key"


async def get_setting(*, session: AsyncSession, name: str) -> str | None:
    row = await session.get(ResponseSetting, name)
    return row.value if row else None


async def set_setting(*, session: AsyncSession, name: str, value: str) -> None:
    row = await session.get(ResponseSetting, name)
    if row is None:
        session.add(ResponseSetting(name=name, value=value))
    else:
        row.value = value


async def signing_key(*, session: AsyncSession, config: ResponseConfig) -> bytes:
    """The key of ack-link signatures and generated-secret encryption: the config's, or one
    generated on first use and kept in the store."""
    if config.signing_key:
        return config.signing_key.encode()
    stored = await get_setting(session=session, name=KEY)
    if stored is None:
        stored = secrets.token_urlsafe(32)
        await set_setting(session=session, name=KEY, value=stored)
        await session.flush()
    return stored.encode()


def _fernet(key: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"secrets:" + key).digest()))


async def channel_secret(*, session: AsyncSession, channel: str, key: bytes) -> str:
    """The generated webhook secret of `channel`, made on first use."""
    row = await session.get(ChannelSecret, channel)
    if row is not None:
        try:
            return _fernet(key).decrypt(row.encrypted).decode()
        except InvalidToken:
            # the signing key changed: the old secret cannot be read, so make a new one
            await session.delete(row)
            await session.flush()
    secret = "whsec_" + secrets.token_urlsafe(32)
    session.add(ChannelSecret(channel=channel, encrypted=_fernet(key).encrypt(secret.encode())))
    await session.flush()
    return secret


async def reveal_secret(
    *, session: AsyncSession, channel: str, key: bytes, now: datetime
) -> tuple[str | None, datetime | None]:
    """(the secret in clear the first time, else None; when it was first shown)."""
    secret = await channel_secret(session=session, channel=channel, key=key)
    row = await session.get(ChannelSecret, channel)
    if row is None:  # pragma: no cover - channel_secret just made it
        raise NotFound(f"no generated secret for {channel!r}")
    if row.revealed_at is not None:
        return None, row.revealed_at
    row.revealed_at = now
    return secret, now


# --- the outbox ---------------------------------------------------------------------------


async def newest_entry_id(*, session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(TimelineEntry.id))) or 0)


async def entries_after(
    *, session: AsyncSession, after: int, also: Iterable[int], limit: int
) -> list[tuple[TimelineEntry, Issue]]:
    """Committed timeline entries with ids above `after`, plus those among `also` (ids
    the outbox is still waiting for), oldest first, with their issue."""
    rows = list(
        await session.execute(
            select(TimelineEntry, Issue)
            .join(Issue, Issue.id == TimelineEntry.issue_id)
            .where(TimelineEntry.id > after)
            .order_by(TimelineEntry.id)
            .limit(limit)
        )
    )
    waiting = sorted(set(also))[:1000]
    if waiting:
        rows += list(
            await session.execute(
                select(TimelineEntry, Issue)
                .join(Issue, Issue.id == TimelineEntry.issue_id)
                .where(TimelineEntry.id.in_(waiting))
            )
        )
    out = {e.id: (e, i) for e, i in rows}
    return [out[k] for k in sorted(out)]


def facts_of(issue: Issue) -> rules.IssueFacts:
    return rules.IssueFacts(
        priority=issue.priority,
        component=issue.component,
        route=issue.route,
        labels=list(issue.labels or []),
        source=issue.reporter,
    )


def issue_url(base_url: str, issue_id: int) -> str:
    return f"{base_url.rstrip('/')}/issues/{issue_id}"


def ack_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/ack/{token}"


def new_ack_token(key: bytes, issue_id: int, ttl: timedelta, now: datetime) -> str:
    claim = AckClaim(
        issue_id=issue_id,
        expires=int((now + ttl).timestamp()),
        nonce=secrets.token_urlsafe(12),
    )
    return rules.sign_ack(key, claim)


def message_for(
    entry: TimelineEntry, issue: Issue, change: str, *, base_url: str, ack_token: str
) -> dict[str, Any]:
    """The snapshot a delivery carries: what changed and the issue as it was then."""
    return {
        "event": change,
        "entry_id": entry.id,
        "issue_id": issue.id,
        "title": issue.title,
        "priority": issue.priority,
        "status": issue.status,
        "component": issue.component,
        "route": issue.route,
        "labels": list(issue.labels or []),
        "sla_state": issue.sla_state,
        "due_at": issue.due_at.isoformat() if issue.due_at else None,
        "acknowledged_at": issue.acknowledged_at.isoformat() if issue.acknowledged_at else None,
        "text": entry.text,
        "evidence": {},
        "at": entry.at.isoformat(),
        "issue_url": issue_url(base_url, issue.id),
        "ack_url": ack_url(base_url, ack_token),
    }


def pending_delivery(*, now: datetime, due: datetime | None = None, **fields: Any) -> Delivery:
    """A new delivery for the dispatcher (`fields`: its issue_id, entry_id, event, channel,
    channel_type, recipient and message), due at `due` (default now), with its own
    idempotency key; the caller adds it to the session."""
    return Delivery(
        **fields,
        state=DeliveryState.pending.value,
        attempts=0,
        idempotency_key=uuid.uuid4().hex,
        created_at=now,
        next_attempt_at=due or now,
    )


async def make_deliveries(
    *,
    session: AsyncSession,
    config: ResponseConfig,
    entries: Sequence[tuple[TimelineEntry, Issue]],
    base_url: str,
    key: bytes,
    now: datetime,
) -> list[Delivery]:
    """Delivery rows for every notable entry and every channel its rules name; an (entry,
    channel) pair that already has one (looked at before a restart) is skipped."""
    wanted: list[tuple[TimelineEntry, Issue, str, str]] = []
    for entry, issue in entries:
        change = rules.change_of(entry.kind, entry.data or {})
        if change is None:
            continue
        for name in rules.targets(config.rules, facts_of(issue), change):
            if config.channel(name) is not None:
                wanted.append((entry, issue, change, name))
    if not wanted:
        return []
    pairs = [(e.id, name) for e, _, _, name in wanted]
    found = await session.execute(
        select(Delivery.entry_id, Delivery.channel).where(
            tuple_(Delivery.entry_id, Delivery.channel).in_(pairs)
        )
    )
    existing = {(entry_id, channel) for entry_id, channel in found}
    made = []
    tokens: dict[int, str] = {}
    evidence = await evidence_of(session=session, issue_ids={i.id for _, i, _, _ in wanted})
    for entry, issue, change, name in wanted:
        if (entry.id, name) in existing:
            continue
        channel = config.channel(name)
        if channel is None:  # pragma: no cover - filtered above
            continue
        token = tokens.get(issue.id) or new_ack_token(key, issue.id, config.ack_link_ttl, now)
        tokens[issue.id] = token
        delivery = pending_delivery(
            issue_id=issue.id,
            entry_id=entry.id,
            event=change,
            channel=name,
            channel_type=channel.type,
            recipient=recipient(channel),
            message={
                **message_for(entry, issue, change, base_url=base_url, ack_token=token),
                "evidence": evidence.get(issue.id, {}),
            },
            now=now,
        )
        session.add(delivery)
        made.append(delivery)
    await session.flush()
    return made


async def evidence_of(*, session: AsyncSession, issue_ids: set[int]) -> dict[int, dict[str, str]]:
    """What a message shows as evidence: how many signals the issue holds and the newest
    one's summary (detection's carries the numbers, e.g. "error rate 34 %, p95 1.2 s")."""
    if not issue_ids:
        return {}
    ids = sorted(issue_ids)
    found = await session.execute(
        select(Signal.issue_id, func.count())
        .where(Signal.issue_id.in_(ids))
        .group_by(Signal.issue_id)
    )
    counts: dict[int | None, int] = {row[0]: row[1] for row in found}
    out: dict[int, dict[str, str]] = {}
    for issue_id in ids:
        if not counts.get(issue_id):
            continue
        latest = await session.scalar(
            select(Signal.summary)
            .where(Signal.issue_id == issue_id)
            .order_by(Signal.id.desc())
            .limit(1)
        )
        out[issue_id] = {"Signals": str(counts[issue_id]), "Latest signal": str(latest)[:300]}
    return out


# --- the dispatcher -----------------------------------------------------------------------


async def due_deliveries(
    *, session: AsyncSession, now: datetime, limit: int, skip: Iterable[int] = ()
) -> list[Delivery]:
    query = (
        select(Delivery)
        .where(
            Delivery.state.in_([DeliveryState.pending.value, DeliveryState.failed.value]),
            Delivery.next_attempt_at <= now,
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    busy = list(skip)
    if busy:
        query = query.where(Delivery.id.not_in(busy))
    return list(await session.scalars(query))


async def record_attempt(
    *,
    session: AsyncSession,
    delivery_id: int,
    ok: bool,
    status: int | None,
    error: str | None,
    retry_after: Callable[[int], timedelta],
    max_attempts: int,
    now: datetime,
) -> Delivery | None:
    """Store the end of one attempt; a final outcome (sent, dead) goes on the timeline."""
    done = await record_attempts(
        session=session,
        outcomes=[(delivery_id, ok, status, error)],
        retry_after=retry_after,
        max_attempts=max_attempts,
        now=now,
    )
    return done[0] if done else await session.get(Delivery, delivery_id)


Attempt = tuple[int, bool, int | None, str | None]  # delivery id, ok, status, error


async def record_attempts(
    *,
    session: AsyncSession,
    outcomes: Sequence[Attempt],
    retry_after: Callable[[int], timedelta],
    max_attempts: int,
    now: datetime,
    final: Collection[int] = (),
) -> list[Delivery]:
    """Store the ends of many attempts at once: the deliveries and their issues are read in
    a few queries and written in one flush (the dispatcher's batch). Each final outcome
    (sent, dead) goes on its issue's timeline; a failure of a delivery in `final` is not
    retried (dead at once). Returns the deliveries that were updated (one no longer
    pending or failed, e.g. replayed meanwhile, is left alone)."""
    ok_ids = await _record_sent(session=session, outcomes=[o for o in outcomes if o[1]], now=now)
    rest = [o for o in outcomes if not (o[1] and o[0] in ok_ids)]
    ids = sorted({o[0] for o in rest})
    rows: dict[int, Delivery] = {}
    issues: dict[int, Issue] = {}
    updated: list[Delivery] = []
    with session.no_autoflush:
        for chunk in _chunks(ids, 500):
            for d in await session.scalars(select(Delivery).where(Delivery.id.in_(chunk))):
                rows[d.id] = d
        issue_ids = sorted({d.issue_id for d in rows.values() if d.issue_id is not None})
        for chunk in _chunks(issue_ids, 500):
            for i in await session.scalars(select(Issue).where(Issue.id.in_(chunk))):
                issues[i.id] = i
        for delivery_id, ok, status, error in rest:
            delivery = rows.get(delivery_id)
            if delivery is None or delivery.state not in _OPEN_STATES:
                continue
            _apply_attempt(
                session,
                delivery,
                issues.get(delivery.issue_id) if delivery.issue_id is not None else None,
                ok=ok,
                status=status,
                error=error,
                delay=retry_after(delivery.attempts + 1),
                max_attempts=max_attempts,
                now=now,
                retry=delivery_id not in final,
            )
            updated.append(delivery)
    await session.flush()
    if ok_ids:
        for chunk in _chunks(sorted(ok_ids), 500):
            fresh = (
                select(Delivery)
                .where(Delivery.id.in_(chunk))
                .execution_options(populate_existing=True)
            )
            updated += list(await session.scalars(fresh))
    return updated


async def _record_sent(
    *, session: AsyncSession, outcomes: Sequence[Attempt], now: datetime
) -> set[int]:
    """The common case, the sends that succeeded, in bulk statements (no objects): one
    UPDATE per receiver status, the "Notified" timeline entries in one INSERT, the issues'
    `updated_at` in one UPDATE. Returns the ids stored (those still pending or failed)."""
    if not outcomes:
        return set()
    await session.flush()  # nothing of ours pending in the session's objects
    wanted = sorted({o[0] for o in outcomes})
    found: dict[int, tuple[int | None, str, str, int]] = {}
    for chunk in _chunks(wanted, 500):
        for row in await session.execute(
            select(
                Delivery.id, Delivery.issue_id, Delivery.channel, Delivery.event, Delivery.attempts
            ).where(Delivery.id.in_(chunk), Delivery.state.in_(_OPEN_STATES))
        ):
            found[row[0]] = (row[1], row[2], row[3], row[4])
    if not found:
        return set()
    by_status: dict[int | None, list[int]] = {}
    for delivery_id, _ok, status, _error in outcomes:
        if delivery_id in found:
            by_status.setdefault(status, []).append(delivery_id)
    for status, ids in by_status.items():
        for chunk in _chunks(sorted(set(ids)), 500):
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(chunk), Delivery.state.in_(_OPEN_STATES))
                .values(
                    state=DeliveryState.sent.value,
                    attempts=Delivery.attempts + 1,
                    next_attempt_at=None,
                    last_attempt_at=now,
                    receiver_status=status,
                    error=None,
                    sent_at=now,
                ),
                execution_options={"synchronize_session": False},
            )
    status_of = {i: st for st, ids in by_status.items() for i in ids}
    # a delivery of no issue (a subscriber's message, hypercare.comms) logs nowhere
    logged = {k: v for k, v in found.items() if v[0] is not None}
    if not logged:
        return set(found)
    await session.execute(
        insert(TimelineEntry),
        [
            {
                "issue_id": issue_id,
                "at": now,
                "actor": "hypercare",
                "kind": "notification",
                "text": f"Notified {channel} ({event})",
                "data": {
                    "delivery_id": delivery_id,
                    "channel": channel,
                    "state": DeliveryState.sent.value,
                    "attempts": attempts + 1,
                    "status": status_of.get(delivery_id),
                },
            }
            for delivery_id, (issue_id, channel, event, attempts) in sorted(logged.items())
        ],
    )
    for chunk in _chunks(sorted({v[0] for v in logged.values() if v[0] is not None}), 500):
        await session.execute(
            update(Issue)
            .where(Issue.id.in_(chunk))
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return set(found)


_OPEN_STATES = (DeliveryState.pending.value, DeliveryState.failed.value)


def _chunks(values: Sequence[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(values), size):
        yield list(values[i : i + size])


def _apply_attempt(
    session: AsyncSession,
    delivery: Delivery,
    issue: Issue | None,
    *,
    ok: bool,
    status: int | None,
    error: str | None,
    delay: timedelta,
    max_attempts: int,
    now: datetime,
    retry: bool = True,
) -> None:
    delivery.attempts += 1
    attempts = delivery.attempts if ok or (retry and rules.retryable(status)) else max_attempts
    state, next_at = rules.after_attempt(
        ok=ok, attempts=attempts, max_attempts=max_attempts, now=now, delay=delay
    )
    delivery.state = state.value
    delivery.next_attempt_at = next_at
    delivery.last_attempt_at = now
    delivery.receiver_status = status
    delivery.error = None if ok else (error or "failed")[:300]
    if ok:
        delivery.sent_at = now
    if state in (DeliveryState.sent, DeliveryState.dead) and issue is not None:
        text = (
            f"Notified {delivery.channel} ({delivery.event})"
            if ok
            else f"Notification to {delivery.channel} gave up after "
            f"{delivery.attempts} attempt(s): {delivery.error}"
        )
        triage_service.record(
            session,
            issue,
            actor="hypercare",
            kind="notification",
            text=text,
            data={
                "delivery_id": delivery.id,
                "channel": delivery.channel,
                "state": state.value,
                "attempts": delivery.attempts,
                "status": status,
            },
            at=now,
        )


async def list_deliveries(
    *, session: AsyncSession, issue_id: int, limit: int = 200
) -> list[Delivery]:
    """The newest `limit` deliveries of the issue, oldest first."""
    await triage_service.get_issue(session=session, issue_id=issue_id)
    rows = await session.scalars(
        select(Delivery)
        .where(Delivery.issue_id == issue_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))


async def find_deliveries(
    *,
    session: AsyncSession,
    event: str | None = None,
    state: DeliveryState | None = None,
    no_issue: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Delivery], int]:
    """Deliveries of any issue or none (digests, subscribers' notices), newest first, with
    how many match: by `event`, `state`, and only those of no issue."""
    query = select(Delivery)
    if event is not None:
        query = query.where(Delivery.event == event)
    if state is not None:
        query = query.where(Delivery.state == state.value)
    if no_issue:
        query = query.where(Delivery.issue_id.is_(None))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(Delivery.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def replay(*, session: AsyncSession, delivery_id: int, actor: str, now: datetime) -> Delivery:
    """Send a delivery again (dead, failed or even sent): a fresh idempotency key, since the
    receiver is meant to see it again."""
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no notification with id {delivery_id}")
    if delivery.state == DeliveryState.pending.value:
        raise InvalidInput(
            f"notification {delivery_id} is already waiting to be sent",
            details={"state": delivery.state},
        )
    delivery.state = DeliveryState.pending.value
    delivery.attempts = 0
    delivery.next_attempt_at = now
    delivery.error = None
    delivery.idempotency_key = uuid.uuid4().hex
    if delivery.issue_id is not None:
        issue = await triage_service.get_issue(session=session, issue_id=delivery.issue_id)
        triage_service.record(
            session,
            issue,
            actor=actor,
            kind="notification",
            text=f"Replay of the notification to {delivery.channel} requested",
            data={"delivery_id": delivery.id, "channel": delivery.channel, "state": "pending"},
            at=now,
        )
    return delivery


def to_read(d: Delivery) -> DeliveryRead:
    return DeliveryRead(
        id=d.id,
        issue_id=d.issue_id,
        entry_id=d.entry_id,
        event=d.event,
        channel=d.channel,
        channel_type=d.channel_type,
        recipient=d.recipient,
        state=DeliveryState(d.state),
        attempts=d.attempts,
        created_at=d.created_at,
        next_attempt_at=d.next_attempt_at,
        last_attempt_at=d.last_attempt_at,
        sent_at=d.sent_at,
        receiver_status=d.receiver_status,
        error=d.error,
    )


# --- acknowledgement ----------------------------------------------------------------------


def acting_person(config: ResponseConfig, token_name: str) -> tuple[str, dict[str, str]]:
    """Who a request acts as: the person whose `token:` is this API token (their name), or
    the token's own name; with what the timeline keeps of it."""
    person = config.person_for_token(token_name)
    if person is None:
        return token_name, {}
    return person.name, {"person": person.name, "token": token_name}


async def acknowledge(
    *,
    session: AsyncSession,
    issue_id: int,
    actor: str,
    via: str,
    note: str | None,
    now: datetime,
    config: ResponseConfig | None = None,
) -> tuple[Issue, bool]:
    """Stamp `acknowledged_at` (once) and put it on the timeline. With `config`, a token
    linked to a person (`response.people[].token`) acknowledges as that person. Returns
    (issue, whether this call acknowledged it; False when it already was)."""
    issue = await triage_service.get_issue(session=session, issue_id=issue_id)
    if issue.acknowledged_at is not None:
        return issue, False
    who, extra = acting_person(config, actor) if config else (actor, {})
    person = config.person(who) if config and extra else None
    shown = f"{person.full_name} ({who})" if person and person.full_name else who
    issue.acknowledged_at = now
    triage_service.record(
        session,
        issue,
        actor=who,
        kind="acknowledged",
        text=f"Acknowledged by {shown} ({via})" + (f": {note}" if note else ""),
        data={"via": via, "note": note, **extra},
        at=now,
    )
    return issue, True


async def use_ack_link(
    *, session: AsyncSession, claim: AckClaim, now: datetime
) -> tuple[Issue, bool] | None:
    """Acknowledge through a verified link; None when the link was used before."""
    if await session.get(UsedAckLink, claim.nonce) is not None:
        return None
    issue = await triage_service.get_issue(session=session, issue_id=claim.issue_id)
    try:
        # a savepoint: two clicks racing each other make one acknowledgement, not a 500
        async with session.begin_nested():
            session.add(UsedAckLink(nonce=claim.nonce, issue_id=issue.id, used_at=now))
    except IntegrityError:
        return None
    return await acknowledge(
        session=session, issue_id=issue.id, actor="ack link", via="signed link", note=None, now=now
    )


# --- on-call overrides --------------------------------------------------------------------

MAX_OVERRIDE = timedelta(days=90)


def override_value(row: OncallOverride) -> Override:
    return Override(row.person, row.start_at, row.end_at, id=row.id)


def override_read(row: OncallOverride) -> OverrideRead:
    return OverrideRead(
        id=row.id,
        schedule=row.schedule,
        person=row.person,
        start=row.start_at,
        end=row.end_at,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
    )


async def list_overrides(
    *,
    session: AsyncSession,
    schedule: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[OncallOverride]:
    """Overrides meeting ``[start, end)`` (each bound optional), oldest start first."""
    query = select(OncallOverride).order_by(OncallOverride.start_at, OncallOverride.id)
    if schedule is not None:
        query = query.where(OncallOverride.schedule == schedule)
    if start is not None:
        query = query.where(OncallOverride.end_at > start)
    if end is not None:
        query = query.where(OncallOverride.start_at < end)
    return list((await session.scalars(query.limit(5000))).all())


async def overrides_by_schedule(
    *,
    session: AsyncSession,
    start: datetime,
    end: datetime,
    config: ResponseConfig | None = None,
) -> dict[str, list[Override]]:
    """The overrides touching [start, end) per schedule: those written in the config file
    (with `config`) first, then those added through the API or the console."""
    out: dict[str, list[Override]] = {}
    for sch in config.schedules if config else []:
        for person, o_start, o_end in sch.override_spans():
            if o_start < end and o_end > start:
                out.setdefault(sch.name, []).append(Override(person, o_start, o_end))
    for row in await list_overrides(session=session, start=start, end=end):
        out.setdefault(row.schedule, []).append(override_value(row))
    return out


async def create_override(
    *,
    session: AsyncSession,
    config: ResponseConfig,
    schedule: str,
    body: OverrideCreate,
    actor: str,
    now: datetime,
) -> OncallOverride:
    if config.schedule(schedule) is None:
        raise NotFound(f"no schedule named {schedule!r} in response.schedules")
    if config.person(body.person) is None:
        known = ", ".join(sorted(p.name for p in config.people)) or "none defined"
        raise InvalidInput(
            f"unknown person {body.person!r} (known: {known})", details={"field": "person"}
        )
    if body.end <= body.start:
        raise InvalidInput("`end` must be after `start`", details={"field": "end"})
    if body.end - body.start > MAX_OVERRIDE:
        raise InvalidInput("an override may last at most 90 days", details={"field": "end"})
    if body.end <= now:
        raise InvalidInput("the override would be over already", details={"field": "end"})
    row = OncallOverride(
        schedule=schedule,
        person=body.person,
        start_at=body.start,
        end_at=body.end,
        note=body.note,
        created_by=actor,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def delete_override(*, session: AsyncSession, override_id: int) -> OncallOverride:
    row = await session.get(OncallOverride, override_id)
    if row is None:
        raise NotFound(f"no override #{override_id}")
    await session.delete(row)
    await session.flush()
    return row


# --- people, schedules and escalation policies as targets ----------------------------------

CLOSED = frozenset({"resolved", "verified", "closed"})
PAGE = "page"  # the timeline kind of an executed escalation step (the outbox ignores it)


async def resolve_targets(
    *,
    session: AsyncSession,
    config: ResponseConfig,
    names: Sequence[str],
    now: datetime,
    urgent: bool = False,
    held: dict[str, datetime] | None = None,
) -> tuple[list[str], list[str]]:
    """The delivery channels for people, schedules (whoever is on call `now`) and channels,
    each once, and what was decided on the way ("primary: ann on call"). A person inside
    their quiet hours is held until they end (their channels go into `held`) unless the
    issue is `urgent` (the matrix's first level)."""
    kinds = config.target_names()
    channels: list[str] = []
    notes: list[str] = []
    overrides: dict[str, list[Override]] | None = None

    def add(name: str) -> None:
        if name not in channels:
            channels.append(name)

    def add_person(name: str) -> None:
        person = config.person(name)
        if person is None:
            notes.append(f"{name}: no such person")
            return
        usable = [
            f"{name}/{j}"
            for j in range(len(person.contacts))
            if config.contact_channel(person, j) is not None
        ]
        if not usable:
            notes.append(f"{name} has no usable contact method")
        quiet = person.quiet_hours
        if quiet is not None and usable and not urgent and held is not None:
            until = rules.quiet_until(
                clock_time(quiet.start), clock_time(quiet.end), ZoneInfo(person.time_zone), now
            )
            if until is not None:
                notes.append(f"{name}: quiet hours until {until:%Y-%m-%d %H:%M} UTC")
                for channel in usable:
                    held.setdefault(channel, until)
        for channel in usable:
            add(channel)

    for name in names:
        kind = kinds.get(name)
        if kind == "channel":
            add(name)
        elif kind == "person":
            add_person(name)
        elif kind == "schedule":
            cfg = config.schedule(name)
            if cfg is None:  # pragma: no cover - kinds come from the config
                continue
            if overrides is None:
                overrides = await overrides_by_schedule(
                    session=session,
                    start=now - timedelta(days=35),
                    end=now + timedelta(days=1),
                    config=config,
                )
            shift = on_call(schedule_of(cfg), overrides.get(name, []), now)
            if shift is None:
                notes.append(f"{name}: nobody on call")
            else:
                notes.append(f"{name}: {shift.person} on call")
                add_person(shift.person)
        else:
            notes.append(f"{name}: not a person, schedule or channel")
    return channels, notes


@dataclass(frozen=True, slots=True)
class Making:
    """What the deliveries of one pass (outbox reactions, escalation steps) are made with."""

    session: AsyncSession
    config: ResponseConfig
    base_url: str
    key: bytes
    now: datetime

    async def record(
        self, issue: Issue, *, kind: str, text: str, data: dict[str, Any]
    ) -> TimelineEntry:
        """An entry of Hypercare's on the issue's timeline, flushed: its deliveries name
        its id."""
        entry = triage_service.record(
            self.session, issue, actor="hypercare", kind=kind, text=text, data=data, at=self.now
        )
        await self.session.flush()
        return entry


async def deliver_to(
    making: Making,
    entry: TimelineEntry,
    issue: Issue,
    change: str,
    channels: Sequence[str],
    *,
    held: dict[str, datetime] | None = None,
    evidence: dict[str, str] | None = None,
) -> list[Delivery]:
    """Pending deliveries of `entry` to `channels` (configured or a person's contact), one
    per channel, due now or when the `held` time of their channel comes; pairs made before
    are skipped."""
    if not channels:
        return []
    session, config, base_url, key, now = (
        making.session,
        making.config,
        making.base_url,
        making.key,
        making.now,
    )
    found = await session.scalars(
        select(Delivery.channel).where(
            Delivery.entry_id == entry.id, Delivery.channel.in_(list(channels))
        )
    )
    existing = set(found)
    token = new_ack_token(key, issue.id, config.ack_link_ttl, now)
    made = []
    for name in channels:
        channel = config.channel(name)
        if channel is None or name in existing:
            continue
        message = message_for(entry, issue, change, base_url=base_url, ack_token=token)
        if evidence:
            message["evidence"] = dict(evidence)
        person_name, slash, index = name.partition("/")
        person = config.person(person_name) if slash else None
        if person is not None:
            contact = person.contacts[int(index)]
            message["for"] = contact.target or person.full_name or person.name
            tag = rules.mention(contact.type, contact.target, person.full_name or person.name)
            if tag is not None:
                message["mention"] = tag
        delivery = pending_delivery(
            issue_id=issue.id,
            entry_id=entry.id,
            event=change,
            channel=name,
            channel_type=channel.type,
            recipient=recipient(channel),
            message=message,
            now=now,
            due=(held or {}).get(name),
        )
        session.add(delivery)
        made.append(delivery)
    await session.flush()
    return made


async def open_escalations(*, session: AsyncSession, issue_id: int) -> list[Escalation]:
    rows = await session.scalars(
        select(Escalation).where(Escalation.issue_id == issue_id, Escalation.stopped_at.is_(None))
    )
    return list(rows)


def _stop(session: AsyncSession, row: Escalation, issue: Issue, reason: str, now: datetime) -> None:
    row.stopped_at, row.stop_reason, row.next_at = now, reason, None
    triage_service.record(
        session,
        issue,
        actor="hypercare",
        kind="escalation_stopped",
        text=f"Escalation policy {row.policy} stopped after {row.done} step(s): {reason}",
        data={"policy": row.policy, "done": row.done, "reason": reason},
        at=now,
    )


async def react(
    *,
    session: AsyncSession,
    config: ResponseConfig,
    matrix: Matrix,
    entries: Sequence[tuple[TimelineEntry, Issue]],
    base_url: str,
    key: bytes,
    now: datetime,
    impact: Callable[[Issue], rules.Impact] | None = None,
) -> list[Delivery]:
    """What committed timeline entries mean for people and policies: a new or reprioritised
    issue starts the policies its rules or its matrix level name; SLA at-risk / breached
    (the triage escalation level moving up) makes the next step due at once;
    acknowledgement and resolution stop them. Rules that name people or schedules get
    deliveries to their contacts (the on-call person's, for a schedule)."""
    made: list[Delivery] = []
    making = Making(session, config, base_url, key, now)
    for entry, issue in entries:
        change = rules.change_of(entry.kind, entry.data or {})
        if change is None:
            continue
        if change == "acknowledged" or (change == "status" and issue.status in CLOSED):
            reason = "acknowledged" if change == "acknowledged" else f"issue {issue.status}"
            for row in await open_escalations(session=session, issue_id=issue.id):
                _stop(session, row, issue, reason, now)
            continue
        # at-risk and breached each move a run on by one step (the triage "escalation"
        # entry of the same moment would count it twice)
        if change == "sla":
            for row in await open_escalations(session=session, issue_id=issue.id):
                row.advance_to = max(row.advance_to, row.done + 1)
                row.next_at = now
        named = rules.targets(config.rules, facts_of(issue), change)
        gate = config.impact_gate
        if (
            change == "created"
            and gate is not None
            and impact is not None
            and rules.system_alert(issue.labels or [], gate.sources)
        ):
            verdict = impact(issue)
            checked = await making.record(
                issue,
                kind=IMPACT_CHECK,
                text=verdict.text
                + (
                    " — on-call not paged; the team channel is told"
                    if verdict.impact is False
                    else ""
                ),
                data={"impact": verdict.impact},
            )
            if verdict.impact is False:
                made += await deliver_to(making, checked, issue, "impact", gate.notify)
                continue
        made += await _page(making, matrix, entry, issue, change, named)
    await session.flush()
    return made


async def _page(
    making: Making,
    matrix: Matrix,
    entry: TimelineEntry,
    issue: Issue,
    change: str,
    named: Sequence[str],
) -> list[Delivery]:
    """Deliveries to the people and schedules the rules name, and (for a new or
    reprioritised issue not yet owned) the escalation policies its rules or matrix level
    name, started now."""
    session, config, now = making.session, making.config, making.now
    made: list[Delivery] = []
    kinds = config.target_names()
    direct = [n for n in named if kinds.get(n) in ("person", "schedule")]
    if direct:
        held: dict[str, datetime] = {}
        channels, _notes = await resolve_targets(
            session=session,
            config=config,
            names=direct,
            now=now,
            urgent=bool(matrix.levels) and issue.priority == matrix.levels[0].level,
            held=held,
        )
        made += await deliver_to(making, entry, issue, change, channels, held=held)
    if change not in ("created", "priority") or issue.acknowledged_at or issue.status in CLOSED:
        return made
    try:
        path = matrix.level(issue.priority).escalation
    except InvalidInput:
        path = []
    wanted = [n for n in named if kinds.get(n) == "policy"]
    wanted += list(rules.policies_for(config.policies, issue.priority, path))
    for name in dict.fromkeys(wanted):
        exists = await session.scalar(
            select(Escalation.id).where(Escalation.issue_id == issue.id, Escalation.policy == name)
        )
        if exists is None:
            session.add(
                Escalation(
                    issue_id=issue.id,
                    policy=name,
                    started_at=now,
                    done=0,
                    advance_to=0,
                    next_at=now,
                )
            )
    return made


IMPACT_CHECK = "impact_check"


async def recheck_impact(
    *,
    session: AsyncSession,
    config: ResponseConfig,
    matrix: Matrix,
    base_url: str,
    key: bytes,
    now: datetime,
    impact: Callable[[Issue], rules.Impact],
) -> list[Delivery]:
    """Impact-confirmed paging, looked at again: a system alert whose check found no user
    impact (team channel only) is checked against live telemetry while it stays open and
    unowned (up to `impact_gate.recheck_for` after that check). When impact shows up, the
    issue's timeline says so with the numbers, and on-call is paged as for a new issue:
    once, since the newest check then says impact."""
    gate = config.impact_gate
    if gate is None or gate.recheck_for <= timedelta(0):
        return []
    rows = list(
        await session.execute(
            select(TimelineEntry, Issue)
            .join(Issue, Issue.id == TimelineEntry.issue_id)
            .where(
                TimelineEntry.kind == IMPACT_CHECK,
                TimelineEntry.at >= now - gate.recheck_for,
                Issue.acknowledged_at.is_(None),
                Issue.status.not_in(sorted(CLOSED)),
            )
            .order_by(TimelineEntry.id)
            .limit(2000)
        )
    )
    newest: dict[int, tuple[TimelineEntry, Issue]] = {}
    for entry, issue in rows:
        newest[issue.id] = (entry, issue)  # ordered by id: the last one wins
    made: list[Delivery] = []
    making = Making(session, config, base_url, key, now)
    for entry, issue in newest.values():
        if (entry.data or {}).get("impact") is not False:
            continue
        verdict = impact(issue)
        if verdict.impact is not True:
            continue
        checked = await making.record(
            issue,
            kind=IMPACT_CHECK,
            text=f"{verdict.text} — user impact appeared after the alert opened: "
            "on-call is paged now",
            data={"impact": True, "recheck": True},
        )
        named = rules.targets(config.rules, facts_of(issue), "created")
        made += await _page(making, matrix, checked, issue, "created", named)
    await session.flush()
    return made


async def impact_evidence(*, session: AsyncSession, issue_id: int) -> dict[str, str]:
    """The newest impact check of an issue that found impact, as a page's evidence line."""
    entry = await session.scalar(
        select(TimelineEntry)
        .where(TimelineEntry.issue_id == issue_id, TimelineEntry.kind == IMPACT_CHECK)
        .order_by(TimelineEntry.id.desc())
        .limit(1)
    )
    if entry is None or (entry.data or {}).get("impact") is not True:
        return {}
    return {"Impact": entry.text[:300]}


def escalation_state(row: Escalation, issue: Issue) -> rules.EscalationState:
    return rules.EscalationState(
        started_at=row.started_at,
        done=row.done,
        last_at=row.last_at,
        advance_to=row.advance_to,
        acknowledged=issue.acknowledged_at is not None,
    )


async def escalation_pass(
    *,
    session: AsyncSession,
    config: ResponseConfig,
    base_url: str,
    key: bytes,
    now: datetime,
    urgent_priority: str = "P1",
) -> list[Delivery]:
    """Run the escalation steps due at `now`: each on the issue's timeline (who was on
    call, whom it reached), with deliveries for its targets."""
    rows = list(
        await session.execute(
            select(Escalation, Issue)
            .join(Issue, Issue.id == Escalation.issue_id)
            .where(Escalation.stopped_at.is_(None), Escalation.next_at <= now)
            .order_by(Escalation.next_at, Escalation.id)
            .limit(200)
        )
    )
    made: list[Delivery] = []
    making = Making(session, config, base_url, key, now)
    for row, issue in rows:
        policy = config.policy(row.policy)
        if policy is None:
            _stop(session, row, issue, "the policy is no longer configured", now)
            continue
        if issue.acknowledged_at is not None:
            _stop(session, row, issue, "acknowledged", now)
            continue
        if issue.status in CLOSED:
            _stop(session, row, issue, f"issue {issue.status}", now)
            continue
        plan = rules.next_steps(policy, escalation_state(row, issue), now)
        for step in plan.due:
            step_held: dict[str, datetime] = {}
            channels, notes = await resolve_targets(
                session=session,
                config=config,
                names=step.notify,
                now=now,
                urgent=issue.priority == urgent_priority,
                held=step_held,
            )
            late = (now - step.due_at).total_seconds()
            entry = await making.record(
                issue,
                kind=PAGE,
                text=(
                    f"Escalation {policy.name}: step {step.number}/{len(policy.steps)}"
                    f" (round {step.round}/{policy.repeat}) notifies "
                    f"{', '.join(step.notify) or 'nobody'}"
                    + (f" — {'; '.join(notes)}" if notes else "")
                ),
                data={
                    "policy": policy.name,
                    "step": step.number,
                    "round": step.round,
                    "notify": list(step.notify),
                    "channels": channels,
                    "notes": notes,
                    "due_at": step.due_at.isoformat(),
                    "late_seconds": round(late, 3),
                },
            )
            evidence = await impact_evidence(session=session, issue_id=issue.id)
            made += await deliver_to(
                making, entry, issue, PAGE, channels, held=step_held, evidence=evidence
            )
        if plan.due:
            row.done += len(plan.due)
            row.last_at = now
        row.next_at = plan.next_at
        if plan.next_at is None:
            _stop(session, row, issue, "every step ran without acknowledgement", now)
    await session.flush()
    return made


async def list_escalations(*, session: AsyncSession, issue_id: int) -> list[Escalation]:
    rows = await session.scalars(
        select(Escalation).where(Escalation.issue_id == issue_id).order_by(Escalation.id)
    )
    return list(rows)


# --- storms -------------------------------------------------------------------------------

STORM = "storm"


STORM_PAGE = "storm_page"
# what a storm folds: the event of the deliveries, and the event of their grouped one
_STORM_KINDS = (("created", STORM), (PAGE, STORM_PAGE))


async def gather_storm(
    *, session: AsyncSession, config: ResponseConfig, made: list[Delivery], now: datetime
) -> list[Delivery]:
    """During a storm (more than `storm.issues` issues opened within `storm.within`), the
    fresh "created" deliveries to each channel are folded into that channel's one pending
    storm delivery (made when the storm starts, sent `storm.gather` later), and so are the
    escalation pages ("page": one grouped page per channel or person's contact). Returns
    the deliveries still standing."""
    storm = config.storm
    kinds = dict(_STORM_KINDS)
    folded = [d for d in made if d.event in kinds]
    if storm is None or not folded:
        return made
    recent = await session.scalar(
        select(func.count()).select_from(Issue).where(Issue.created_at >= now - storm.within)
    )
    if int(recent or 0) <= storm.issues:
        return made
    kept = [d for d in made if d.event not in kinds]
    by_channel: dict[tuple[str, str], list[Delivery]] = {}
    for d in folded:
        by_channel.setdefault((kinds[d.event], d.channel), []).append(d)
    for (event, channel), rows in by_channel.items():
        pending = await session.scalar(
            select(Delivery)
            .where(
                Delivery.channel == channel,
                Delivery.event == event,
                Delivery.state == DeliveryState.pending.value,
            )
            .order_by(Delivery.id.desc())
            .limit(1)
        )
        members = [d.message for d in rows]
        paging = event == STORM_PAGE
        if pending is not None:
            # bounded: the first 1000 issues of a storm are listed
            issues = (list(pending.message.get("members", [])) + members)[:1000]
            message = rules.storm_message(issues, within=storm.within, paging=paging)
            pending.message = {**message, "members": issues}
        else:
            head = rows[0]
            message = rules.storm_message(members, within=storm.within, paging=paging)
            pending = pending_delivery(
                issue_id=head.issue_id,
                entry_id=head.entry_id,
                event=event,
                channel=channel,
                channel_type=head.channel_type,
                recipient=head.recipient,
                message={**message, "members": members},
                now=now,
                due=now + storm.gather,
            )
            # the head's own row gives way to the storm row (same entry and channel)
            await session.delete(head)
            await session.flush()
            session.add(pending)
            kept.append(pending)
            rows = rows[1:]
        for d in rows:
            await session.delete(d)
    await session.flush()
    return kept

"""Wiring of outside messages into the response outbox: the "fixed" messages are made in
the outbox pass that reads the resolving entry, in its transaction (so a message is made
once, for a committed resolution only); subscribers' notices by the subscriber loop and
the stakeholder digest by the digest loop, each in the transaction that records what it
decided. The response dispatcher sends them all (retries, dead letters)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.state import AppState
from hypercare.comms import digest, rules, service
from hypercare.response import jobs as response_jobs
from hypercare.response import oncall
from hypercare.response import service as response_service
from hypercare.response.models import Delivery
from hypercare.response.roster import schedule_of
from hypercare.store.base import utcnow
from hypercare.telemetry.jobs import live_of
from hypercare.triage.models import Issue, TimelineEntry

log = logging.getLogger("hypercare.comms")


def install(state: AppState) -> None:
    """Add the "fixed" messages to the response outbox of `state` (once)."""
    rt = response_jobs.runtime(state)
    if any(getattr(r, "__name__", "") == "fixed_reactor" for r in rt.reactors):
        return

    async def fixed_reactor(
        session: AsyncSession, entries: Sequence[tuple[TimelineEntry, Issue]], now: datetime
    ) -> list[Delivery]:
        return await service.fixed_messages(
            session=session,
            config=state.config.comms,
            response=state.config.response,
            entries=entries,
            now=now,
        )

    rt.reactors.append(fixed_reactor)


async def build_digest(session: AsyncSession, state: AppState, hours: int | None) -> dict[str, Any]:
    """The digest of the last `hours` (default `comms.digest.period`) up to now."""
    cfg = state.config.comms.digest
    end = utcnow()
    period = timedelta(hours=hours) if hours else cfg.period
    facts = await service.digest_facts(
        session=session,
        live=live_of(state),
        levels=[lv.level for lv in state.matrix.levels],
        start=end - period,
        end=end,
        timezone=cfg.timezone,
    )
    found = digest.digest(facts)
    zone = ZoneInfo(cfg.timezone)
    found["period"]["start"] = facts.start.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    found["period"]["end"] = facts.end.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return found


# --- the digest loop ----------------------------------------------------------------------

DIGEST_EVERY = 30.0  # seconds between looks at the clock and the rosters
LAST_SENT = "comms.digest.last_sent"  # a response setting: when the digest was last due


@dataclass
class DigestRuntime:
    last: datetime | None = None
    on_call: dict[str, str | None] | None = None


def digest_runtime(state: AppState) -> DigestRuntime:
    return state.runtimes.setdefault(DigestRuntime, DigestRuntime)


async def _on_call(session: AsyncSession, state: AppState, now: datetime) -> dict[str, str | None]:
    cfg = state.config.response
    overrides = await response_service.overrides_by_schedule(
        session=session, start=now - timedelta(days=35), end=now + timedelta(days=1)
    )
    out: dict[str, str | None] = {}
    for sch in cfg.schedules:
        shift = oncall.on_call(schedule_of(sch), overrides.get(sch.name, []), now)
        out[sch.name] = shift.person if shift else None
    return out


async def digest_turn(state: AppState, now: datetime | None = None) -> str | None:
    """Decide the digest when a `send_at` time passed since the last one or (with
    `at_shift_change`) the person on call of a schedule changed; returns why it is sent.

    Sending is the response outbox's: the digest's deliveries (one per
    `comms.digest.channels`) are written in the transaction that stores when it was last
    sent, and the dispatcher sends them (retries, dead letters). A crash after the commit
    loses nothing; one before it sends nothing and decides again."""
    cfg = state.config.comms.digest
    rt = digest_runtime(state)
    now = now or utcnow()
    why: str | None = None
    async with state.sessions() as session, session.begin():
        last = rt.last
        if last is None:
            stored = await response_service.get_setting(session=session, name=LAST_SENT)
            last = datetime.fromisoformat(stored) if stored else now
        due = digest.scheduled_between(last, now, cfg.send_at, ZoneInfo(cfg.timezone))
        if due is not None:
            why = f"scheduled {due.strftime('%H:%M')}"
        current = rt.on_call
        if cfg.at_shift_change and state.config.response.schedules:
            current = await _on_call(session, state, now)
            changed = digest.shift_changes(rt.on_call or {}, current) if rt.on_call else []
            if changed and why is None:
                why = f"shift change ({', '.join(changed)})"
        if why is not None:
            found = await build_digest(session, state, None)
            await service.digest_deliveries(
                session=session,
                response=state.config.response,
                channels=cfg.channels,
                message=digest.message(found, cfg.title, why),
                now=now,
            )
            last = now
            await response_service.set_setting(
                session=session, name=LAST_SENT, value=now.isoformat()
            )
    # only once committed: a failed turn is simply done again
    rt.last, rt.on_call = last, current
    if why is not None:
        response_jobs.nudge(state)
    return why


async def run_digest(state: AppState, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await digest_turn(state)
        except Exception:
            log.exception("digest turn failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), DIGEST_EVERY)


# --- subscribers --------------------------------------------------------------------------

SUBSCRIBERS_EVERY = 5.0  # seconds between looks at incident updates and maintenance


def public_base(state: AppState) -> str:
    """Where links in subscribers' messages point."""
    cfg = state.config.comms.subscribers
    return (cfg.public_url or response_jobs.base_url(state)).rstrip("/")


async def subscriber_pass(state: AppState, now: datetime | None = None) -> int:
    """Deliveries (response outbox) of new public incident updates and maintenance phases
    to the subscribers of their components; returns how many were made."""
    cfg = state.config.comms.subscribers
    now = now or utcnow()
    base = public_base(state)
    async with state.sessions() as session, session.begin():
        key = await response_service.signing_key(session=session, config=state.config.response)

        def unsubscribe_url(subscriber_id: int) -> str:
            token = rules.sign_link(key, rules.UNSUBSCRIBE, subscriber_id, 0)
            return f"{base}/status/unsubscribe?token={token}"

        found = await service.notices(
            session=session, now=now, notice_seconds=cfg.notice.total_seconds()
        )
        made = await service.notify_subscribers(
            session=session,
            email_channel=cfg.channel,
            page=state.config.status.page.name,
            found=found,
            unsubscribe_url=unsubscribe_url,
            now=now,
        )
    if made:
        response_jobs.runtime(state).wake.set()
    return len(made)


async def run_subscribers(state: AppState, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await subscriber_pass(state)
        except Exception:
            log.exception("subscriber pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SUBSCRIBERS_EVERY)

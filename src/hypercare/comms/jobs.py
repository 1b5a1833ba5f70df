"""Wiring of outside messages into the response outbox: the "fixed" messages are made in
the outbox pass that reads the resolving entry, in its transaction (so a message is made
once, for a committed resolution only), and sent by its dispatcher (retries, dead
letters)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.state import AppState
from hypercare.comms import digest, service
from hypercare.response import jobs as response_jobs
from hypercare.response.models import Delivery
from hypercare.store.base import utcnow
from hypercare.telemetry.jobs import live_of
from hypercare.triage.models import Issue, TimelineEntry


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

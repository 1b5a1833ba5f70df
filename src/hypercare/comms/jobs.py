"""Wiring of outside messages into the response outbox: the "fixed" messages are made in
the outbox pass that reads the resolving entry, in its transaction (so a message is made
once, for a committed resolution only), and sent by its dispatcher (retries, dead
letters)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.state import AppState
from hypercare.comms import service
from hypercare.response import jobs as response_jobs
from hypercare.response.models import Delivery
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

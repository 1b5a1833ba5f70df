"""The SLA clock: a background job that re-evaluates open issues on an interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hypercare.api.state import AppState
from hypercare.store.base import utcnow
from hypercare.triage import service

log = logging.getLogger("hypercare.sla")


async def sla_tick(state: AppState) -> int:
    """One pass of the clock in its own transaction; returns how many issues changed."""
    async with state.sessions() as session, session.begin():
        changed = await service.refresh_sla(session=session, matrix=state.matrix, now=utcnow())
    return len(changed)


async def run_sla_clock(state: AppState, stop: asyncio.Event) -> None:
    interval = state.config.triage.sla_check_interval.total_seconds()
    while not stop.is_set():
        try:
            changed = await sla_tick(state)
            if changed:
                log.info("SLA clock: %d issue(s) changed state", changed)
        except Exception:
            # the clock must keep running through a passing store error; the next tick retries
            log.exception("SLA clock pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)

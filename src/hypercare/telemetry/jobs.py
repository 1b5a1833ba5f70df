"""Telemetry's long-lived helpers on `AppState.runtimes` and its background jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from hypercare.api.state import AppState
from hypercare.telemetry import query
from hypercare.telemetry.collector import Collector, recover
from hypercare.telemetry.compaction import expire, rollup_hours
from hypercare.telemetry.live import LiveStore

log = logging.getLogger("hypercare.telemetry")


def collector_of(state: AppState) -> Collector:
    """The console's collector (and its live store), created on first use."""
    return state.runtimes.setdefault(
        Collector,
        lambda: Collector(
            state.engine,
            state.config.telemetry,
            LiveStore(state.config.telemetry.histogram_cache_mb << 20),
        ),
    )


def live_of(state: AppState) -> LiveStore:
    return collector_of(state).live


async def start(state: AppState) -> None:
    """Rebuild live aggregates of batches acknowledged but not yet rolled up."""
    collector = collector_of(state)
    await recover(collector.engine, collector.live)


async def _every(
    interval: float, stop: asyncio.Event, what: str, tick: Callable[[], Awaitable[object]]
) -> None:
    while not stop.is_set():
        try:
            await tick()
        except Exception:
            # keep running through a passing store error; the next tick retries
            log.exception("telemetry %s pass failed", what)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_flush(state: AppState, stop: asyncio.Event) -> None:
    collector = collector_of(state)
    interval = state.config.telemetry.flush_interval.total_seconds()
    await _every(interval, stop, "flush", lambda: collector.flush(time.time()))


PREWARM_SECONDS = 24 * 3600


async def prewarm(state: AppState, now: float) -> None:
    """Read the last day's route table once, so the histogram cache holds its rows before
    the first person opens the console (a cold 24 h read takes several times longer)."""
    try:
        async with state.sessions() as session:
            await query.summary(
                session, live_of(state), start=now - PREWARM_SECONDS, end=now, now=now
            )
    except Exception:
        log.warning("telemetry: could not prewarm the histogram cache", exc_info=True)


async def compact(state: AppState, now: float) -> None:
    collector = collector_of(state)
    await rollup_hours(collector, now)
    deleted = await expire(collector, now)
    if any(deleted.values()):
        log.info("telemetry retention deleted %s", deleted)


async def run_compaction(state: AppState, stop: asyncio.Event) -> None:
    interval = state.config.telemetry.compaction_interval.total_seconds()
    await _every(interval, stop, "compaction", lambda: compact(state, time.time()))


async def shutdown(state: AppState) -> None:
    """Write what can be written before the process exits (closed minutes only)."""
    collector = state.runtimes.get(Collector)
    if collector is not None:
        with contextlib.suppress(Exception):
            await collector.flush(time.time())

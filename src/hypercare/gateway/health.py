"""Target health: active checks (a GET every interval) and passive ejection (errors in a row).

The threshold logic is plain functions over a `Target`; `ActiveChecker` only runs the probes.
A target is in rotation when the active checker calls it healthy and it is not ejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from hypercare.gateway.balancer import Target
from hypercare.gateway.config import HealthConfig, PassiveConfig

log = logging.getLogger("hypercare.gateway.health")


def record_check(target: Target, ok: bool, healthy: int, unhealthy: int) -> bool:
    """Count one active probe result; True when the target's verdict changed."""
    if ok:
        target.check_failures = 0
        target.check_successes += 1
        if not target.healthy and target.check_successes >= healthy:
            target.healthy = True
            return True
    else:
        target.check_successes = 0
        target.check_failures += 1
        if target.healthy and target.check_failures >= unhealthy:
            target.healthy = False
            return True
    return False


def record_failure(target: Target, passive: PassiveConfig, now: float) -> bool:
    """Count one connection-level failure; True when it ejects the target."""
    target.consecutive_failures += 1
    if target.consecutive_failures >= passive.failures:
        target.consecutive_failures = 0
        target.ejected_until = now + passive.eject.total_seconds()
        return True
    return False


async def probe(target: Target, path: str, timeout: float) -> bool:
    """One GET: healthy when the target answers 2xx or 3xx within `timeout`."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nhost: {target.address}\r\n"
                "user-agent: hypercare-health\r\nconnection: close\r\n\r\n".encode()
            )
            line = await reader.readline()
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    parts = line.split(b" ", 2)
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1][:1] in (b"2", b"3")


class ActiveChecker:
    """Probes every target of one upstream each interval, all targets concurrently."""

    def __init__(
        self,
        upstream: str,
        targets: Sequence[Target],
        config: HealthConfig,
        on_change: Callable[[str, Target], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.targets = list(targets)
        self.config = config
        self.on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        interval = self.config.interval.total_seconds()
        timeout = self.config.timeout.total_seconds()
        while True:
            try:
                await self._round(timeout)
            except Exception:  # keep checking: a dead checker would freeze every verdict
                log.exception("health check round for upstream %s failed", self.upstream)
            await asyncio.sleep(interval)

    async def _round(self, timeout: float) -> None:
        results = await asyncio.gather(*(probe(t, self.config.path, timeout) for t in self.targets))
        for t, ok in zip(self.targets, results, strict=True):
            if record_check(t, ok, self.config.healthy, self.config.unhealthy):
                log.warning(
                    "target %s of upstream %s is now %s",
                    t.address,
                    self.upstream,
                    "healthy" if t.healthy else "unhealthy",
                )
                if self.on_change is not None:
                    self.on_change(self.upstream, t)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

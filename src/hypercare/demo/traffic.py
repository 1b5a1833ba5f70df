"""Demo traffic: a realistic, rate-bounded mix of shop calls through the gateway (loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass, field

from hypercare.demo.http import Client

# (weight, method, path maker, body)
MIX: tuple[tuple[int, str, str], ...] = (
    (40, "GET", "/catalog/search?q=shoes"),
    (20, "GET", "/catalog/items/{n}"),
    (10, "POST", "/orders"),
    (10, "GET", "/orders/{n}"),
    (8, "POST", "/payments"),
    (12, "GET", "/payment/status"),
)


@dataclass
class TrafficStats:
    sent: int = 0
    failed: int = 0
    # request ids of recent failed calls, per path prefix, as a browser would remember them
    failed_ids: dict[str, deque[str]] = field(default_factory=dict)

    def remember_failure(self, path: str, request_id: str) -> None:
        key = path.split("?", 1)[0]
        self.failed_ids.setdefault(key, deque(maxlen=20)).append(request_id)

    def recent_failures(self, path: str, n: int = 3) -> list[str]:
        return list(self.failed_ids.get(path, ()))[-n:]


class Traffic:
    """Send about `rate` requests per second through the gateway until stopped."""

    def __init__(
        self, host: str, port: int, *, rate: float, api_key: str, seed: int = 11, workers: int = 8
    ) -> None:
        self.host, self.port = host, port
        self.rate = min(rate, 200.0)  # the demo never floods: hard cap
        self.api_key = api_key
        self.rng = random.Random(seed)
        self.workers = workers
        self.stats = TrafficStats()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for i in range(self.workers):
            self._tasks.append(asyncio.create_task(self._run(i), name=f"demo-traffic-{i}"))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _pick(self) -> tuple[str, str]:
        weights = [w for w, _, _ in MIX]
        _, method, path = self.rng.choices(MIX, weights)[0]
        return method, path.replace("{n}", str(self.rng.randint(1, 500)))

    async def _run(self, index: int) -> None:
        client = Client(self.host, self.port, timeout=15)
        interval = self.workers / self.rate
        next_at = time.monotonic() + index * interval / self.workers
        try:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    if self._stop.is_set():
                        break
                next_at = max(next_at + interval, time.monotonic() - interval)
                method, path = self._pick()
                body = b'{"amount": 42}' if method == "POST" else None
                try:
                    resp = await client.request(
                        method, path, headers={"x-api-key": self.api_key}, body=body
                    )
                except (OSError, TimeoutError, ValueError, EOFError):
                    self.stats.failed += 1
                    continue
                self.stats.sent += 1
                if resp.status >= 500:
                    self.stats.failed += 1
                    request_id = resp.headers.get("x-request-id")
                    if request_id:
                        self.stats.remember_failure(path, request_id)
        finally:
            await client.close()

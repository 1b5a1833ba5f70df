"""No false positive through `hypercare up`: healthy traffic with the noise a real API has
opens no issue.

A fresh console (detection every second) in front of a loopback service, fed for a bounded
time (`SECONDS`, at most `RATE * SECONDS` calls) with what a healthy launch looks like:
latency with jitter and a slow tail, item lookups that miss (404), a client whose key
expired (a trickle of 401s), calls to paths no route takes, and a rare lone 500. Detection
sees every route (its live view counts the calls) and fires nothing: no signal, no issue.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hypercare.demo.http import Client, Request, Response, json_response, serve
from tests.gateway.helpers import LoopThread
from tests.support import Up, start_up, wait_until

ADMIN = "hc_live-quiet-admin-token"
H = {"Authorization": f"Bearer {ADMIN}"}
KEY = "quiet-web-key-000000001"
RATE = 30.0  # calls per second, all clients together
SECONDS = 75.0  # of traffic; the detection window is 30 s, so more than two windows
WORKERS = 6

ROUTES = ("items", "search", "checkout")


def config(port: int) -> str:
    return f"""
gateway:
  upstreams:
    shop:
      targets: ['127.0.0.1:{port}']
      health: {{path: /healthz, interval: 2s, healthy: 2, unhealthy: 3}}
  routes:
    - name: items
      match: {{path: "/items/{{id}}", methods: [GET]}}
      upstream: shop
      auth: key
    - name: search
      match: {{path: /search, methods: [GET]}}
      upstream: shop
      auth: key
    - name: checkout
      match: {{path: /checkout, methods: [POST]}}
      upstream: shop
      auth: key
      retries: 0
  consumers:
    - name: web
      keys: ['{KEY}']
detection:
  interval: 1s
"""


class Service:
    """A healthy service: exponential latency around 15 ms with a 2 % tail of 150-400 ms,
    3 % of item lookups unknown (404), one call in 400 a lone 500."""

    def __init__(self, seed: int = 3) -> None:
        self.rng = random.Random(seed)
        self.served: Counter[int] = Counter()

    async def handle(self, req: Request) -> Response:
        if req.path == "/healthz":
            return json_response(200, {"status": "ok"})
        rng = self.rng
        latency = rng.expovariate(1 / 15) + (rng.uniform(150, 400) if rng.random() < 0.02 else 0)
        await asyncio.sleep(latency / 1000)
        if rng.random() < 1 / 400:
            status = 500
        elif req.path.startswith("/items/") and rng.random() < 0.03:
            status = 404
        else:
            status = 201 if req.method == "POST" else 200
        self.served[status] += 1
        return json_response(status, {"ok": status < 400})


class Clients:
    """`WORKERS` keep-alive clients sending about `RATE` calls per second until stopped."""

    def __init__(self, port: int, seed: int = 9) -> None:
        self.port = port
        self.rng = random.Random(seed)
        self.answers: Counter[int] = Counter()
        self.errors = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(i)) for i in range(WORKERS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _pick(self) -> tuple[str, str, str]:
        rng = self.rng
        key = "expired-key-0000000" if rng.random() < 0.005 else KEY
        roll = rng.random()
        if roll < 0.01:
            return "GET", "/wp-login.php", key  # a scanner: no route takes it
        if roll < 0.5:
            return "GET", f"/items/{rng.randint(1, 5000)}", key
        if roll < 0.85:
            return "GET", f"/search?q=shoes+{rng.randint(1, 50)}", key
        return "POST", "/checkout", key

    async def _run(self, index: int) -> None:
        client = Client("127.0.0.1", self.port, timeout=15)
        interval = WORKERS / RATE
        next_at = time.monotonic() + index * interval / WORKERS
        try:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    if self._stop.is_set():
                        break
                # behind schedule (a loaded machine): skip, never burst to catch up
                next_at = max(next_at + interval, time.monotonic())
                method, path, key = self._pick()
                body = b'{"cart": 1}' if method == "POST" else None
                try:
                    resp = await client.request(method, path, headers={"x-api-key": key}, body=body)
                except (OSError, TimeoutError, ValueError, EOFError):
                    self.errors += 1
                    continue
                self.answers[resp.status] += 1
        finally:
            await client.close()


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[tuple[Up, Clients, Service]]:
    loop = LoopThread()
    service = Service()
    server = loop.run(serve(service.handle, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    cfg = tmp_path / "hypercare.yaml"
    cfg.write_text(config(port))
    try:
        up = start_up(
            tmp_path / "data",
            config=cfg,
            args=["--workers", "1"],
            env={"HYPERCARE_ADMIN_TOKEN": ADMIN},
        )
    except BaseException:
        server.close()
        loop.stop()
        raise
    clients = Clients(up.gateway_port)
    try:
        loop.call(clients.start)
        yield up, clients, service
    finally:
        loop.run(clients.stop(), timeout=30)
        up.stop()
        server.close()
        loop.run(server.wait_closed(), timeout=30)
        loop.stop()


def get(up: Up, path: str, **params: Any) -> Any:
    r = httpx.get(f"{up.url}{path}", params=params, headers=H, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_healthy_noisy_traffic_opens_no_issue(quiet: tuple[Up, Clients, Service]) -> None:
    up, clients, service = quiet
    started = time.monotonic()
    # no issue and no signal at any point while the traffic runs
    while time.monotonic() - started < SECONDS:
        assert get(up, "/api/v1/issues")["total"] == 0, get(up, "/api/v1/issues")["items"]
        assert get(up, "/api/v1/signals")["items"] == []
        time.sleep(1)
    live = get(up, "/api/v1/detection/live")
    assert live["firing"] == [], live["firing"]
    seen = {r["route"]: r["requests"] for r in live["routes"]}
    # detection really watched every route: not quiet for want of data
    assert all(seen.get(route, 0) >= 100 for route in ROUTES), seen
    # and the noise was there: misses, refused keys, unrouted paths, lone 500s
    wait_until(lambda: service.served[500] >= 1, 30, "a lone 500")
    assert {404, 401, 500} <= set(clients.answers), clients.answers
    assert get(up, "/api/v1/issues")["total"] == 0

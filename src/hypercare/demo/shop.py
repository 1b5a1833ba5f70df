"""The demo shop: catalog, orders and payments services with health endpoints and faults.

Each service is a tiny HTTP server on loopback. `Faults` lets the scripted timeline make a
service fail and slow down, exactly as a broken deployment would look from the gateway.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass

from hypercare.demo.http import Request, Response, json_response, serve
from hypercare.demo.pager import Pager


@dataclass
class Faults:
    """What is wrong with a service right now (the scenario changes these)."""

    error_rate: float = 0.0  # share of requests answered 503
    delay_ms: float = 0.0  # extra latency on every request
    paths: tuple[str, ...] = ()  # only these path prefixes; empty = all


class Service:
    def __init__(self, name: str, rng: random.Random) -> None:
        self.name = name
        self.faults = Faults()
        self.rng = rng
        self.base_latency_ms = {"catalog": 12.0, "orders": 25.0, "payments": 40.0}.get(name, 15.0)
        self._ids = itertools.count(1000)

    async def handle(self, req: Request) -> Response:
        if req.path == "/healthz":
            return json_response(200, {"status": "ok", "service": self.name})
        faulty = not self.faults.paths or req.path.startswith(self.faults.paths)
        latency = self.rng.expovariate(1 / self.base_latency_ms)
        if faulty:
            latency += self.faults.delay_ms * (0.5 + self.rng.random())
        await asyncio.sleep(latency / 1000)
        if faulty and self.rng.random() < self.faults.error_rate:
            return json_response(503, {"error": f"{self.name} unavailable"})
        return self.answer(req)

    def answer(self, req: Request) -> Response:
        if self.name == "catalog":
            if req.path.startswith("/catalog/items/"):
                item = req.path.rsplit("/", 1)[-1]
                return json_response(200, {"id": item, "name": f"Item {item}", "price": 19.9})
            return json_response(200, {"results": [{"id": i} for i in range(5)]})
        if self.name == "orders":
            if req.method == "POST":
                return json_response(201, {"id": next(self._ids), "status": "created"})
            return json_response(200, {"id": req.path.rsplit("/", 1)[-1], "status": "paid"})
        if req.method == "POST":
            return json_response(201, {"payment": next(self._ids), "status": "authorized"})
        return json_response(200, {"status": "settled"})


class Shop:
    """Start the three services on free loopback ports."""

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.services = {n: Service(n, rng) for n in ("catalog", "orders", "payments")}
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []
        # the on-call's pager (a webhook sink); started by the demo, not by `start`
        self.pager = Pager()

    async def start(self, host: str = "127.0.0.1") -> None:
        for name, service in self.services.items():
            server = await serve(service.handle, host, 0)
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        await self.pager.close()

"""One worker's gateway: the compiled configuration, the listeners, and the shared state.

`Gateway` owns everything a worker needs (router, upstream targets and pools, key store,
limiters, metrics, the set of client connections) as instance state: nothing is process-global,
so tests can run several gateways in one process. A single timer (the sweeper) enforces every
deadline — header reads, keep-alive idle, upstream response and body idle — so the request path
never schedules a timer of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable

from hypercare.gateway import headers as hdr
from hypercare.gateway.auth import AuthError, JwtVerifier, KeyStore
from hypercare.gateway.balancer import Target
from hypercare.gateway.capture import Capturer, Tap
from hypercare.gateway.config import GatewayConfig
from hypercare.gateway.exchange import Exchange
from hypercare.gateway.health import ActiveChecker, record_failure
from hypercare.gateway.logbudget import LogBudget
from hypercare.gateway.metrics import Metrics
from hypercare.gateway.ratelimit import LocalLimiter, RedisLimiter
from hypercare.gateway.records import CallRecord, RecordSink
from hypercare.gateway.router import Router
from hypercare.gateway.routes import RouteState, UpstreamState, route_state, upstream_state
from hypercare.gateway.server import ClientConnection
from hypercare.gateway.upstream import Pool, UpstreamConnection
from hypercare.telemetry.capture import CallCapture

log = logging.getLogger("hypercare.gateway")
security_log = logging.getLogger("hypercare.gateway.security")

_SWEEP_INTERVAL = 0.05


class Gateway:
    """A worker's data plane. `start()` binds the listeners; `drain()` then `close()` stop it."""

    def __init__(
        self,
        config: GatewayConfig,
        sink: RecordSink | None = None,
        capture: Capturer | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        # None when no route captures anything: the request path then skips capture entirely
        self.capture = capture
        self.metrics = Metrics()
        self.security_log_budget = LogBudget()
        self.connections: set[ClientConnection] = set()
        self.upstreams: dict[str, UpstreamState] = {}
        self.hash_headers: frozenset[bytes] = frozenset()
        hash_headers = set()
        for name, u in config.upstreams.items():
            ups = upstream_state(name, u)
            if ups.hash_source is not None and ups.hash_source != "ip":
                hash_headers.add(ups.hash_source.encode())
            self.upstreams[name] = ups
        self.hash_headers = frozenset(hash_headers)
        self.routes = [route_state(r, self.upstreams[r.upstream]) for r in config.routes]
        self.router: Router[RouteState] = Router.build(
            [
                (r.match.path, r.match.methods, s)
                for r, s in zip(config.routes, self.routes, strict=True)
            ]
        )
        self.keys = KeyStore((c.name, c.keys) for c in config.consumers)
        self.consumer_names = frozenset(c.name for c in config.consumers)
        j = config.jwt
        self.jwt = (
            JwtVerifier(
                secret=j.secret,
                public_key=j.public_key,
                audience=j.audience,
                issuer=j.issuer,
                leeway=j.leeway.total_seconds(),
                consumer_claim=j.consumer_claim,
            )
            if j is not None
            else None
        )
        self.local_limiter = LocalLimiter()
        self.redis_limiter: RedisLimiter | None = None
        lim = config.limits
        self.max_header_bytes = lim.max_header_bytes
        self.max_headers = lim.max_headers
        self.header_timeout = lim.header_timeout.total_seconds()
        self.client_body_timeout = lim.client_body_timeout.total_seconds()
        self.keepalive_timeout = lim.keepalive_timeout.total_seconds()
        self.trusted = hdr.parse_networks(config.trusted_proxies)
        self.servers: list[asyncio.Server] = []
        self.checkers: list[ActiveChecker] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._last_evict = 0.0
        self.addresses: list[tuple[str, int]] = []
        self.admin_address: tuple[str, int] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(
        self,
        host: str,
        port: int,
        *,
        admin: tuple[str, int] | None = None,
        reuse_port: bool = False,
        sock: socket.socket | None = None,
    ) -> None:
        """Bind the proxy listener (and the admin one), start health checks and the sweeper."""
        loop = asyncio.get_running_loop()
        if self.config.redis_url:
            self.redis_limiter = RedisLimiter(
                self.config.redis_url,
                self.local_limiter,
                prefix=self.config.redis_prefix,
                timeout=self.config.redis_timeout.total_seconds(),
            )
        if sock is not None:
            server = await loop.create_server(
                lambda: ClientConnection(self), sock=sock, backlog=1024
            )
        else:
            server = await loop.create_server(
                lambda: ClientConnection(self), host, port, reuse_port=reuse_port, backlog=1024
            )
        self.servers.append(server)
        self.addresses = [s.getsockname()[:2] for s in server.sockets]
        if admin is not None:
            from hypercare.gateway.admin import AdminConnection

            # reuse_port: during a reload the old worker keeps its admin port while it drains.
            admin_server = await loop.create_server(
                lambda: AdminConnection(self), admin[0], admin[1], reuse_port=reuse_port
            )
            self.servers.append(admin_server)
            self.admin_address = admin_server.sockets[0].getsockname()[:2]
        for name, u in self.config.upstreams.items():
            if u.health is not None:
                checker = ActiveChecker(name, self.upstreams[name].targets, u.health)
                checker.start()
                self.checkers.append(checker)
        self._sweeper = loop.call_later(_SWEEP_INTERVAL, self._sweep)

    async def drain(self, timeout: float) -> bool:
        """Stop accepting, finish in-flight requests; True when all finished within `timeout`."""
        for s in self.servers[:1]:
            s.close()
        for c in list(self.connections):
            c.drain()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a set
            await asyncio.sleep(0.02)
        return not self.connections

    async def close(self) -> None:
        """Cut everything that is left and release every socket."""
        for s in self.servers:
            s.close()
        for c in list(self.connections):
            c.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for checker in self.checkers:
            await checker.stop()
        for u in self.upstreams.values():
            for p in u.pools.values():
                p.close()
        if self.redis_limiter is not None:
            await self.redis_limiter.close()
        for s in self.servers:
            await s.wait_closed()
        await asyncio.sleep(0)  # let transports run their connection_lost callbacks

    def _sweep(self) -> None:
        now = time.monotonic()
        for c in list(self.connections):
            if c.deadline and now >= c.deadline:
                try:
                    c.on_timeout(now)
                except Exception:  # a bug in one connection must not stop the sweeper
                    log.exception("timeout handling failed")
                    c.close()
        if now - self._last_evict > 1.0:
            self._last_evict = now
            for u in self.upstreams.values():
                for p in u.pools.values():
                    p.evict(now)
            self.local_limiter.sweep()
        self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_INTERVAL, self._sweep)

    # --- used by exchanges -------------------------------------------------------------------

    async def connect(self, pool: Pool, timeout: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        t = pool.target
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: UpstreamConnection(pool), t.host, t.port),
            timeout=timeout,
        )
        return conn

    def authenticate(self, route: RouteState, ex: Exchange) -> str:
        """The consumer name for the request's credential, or AuthError."""
        consumer: str | None
        if route.auth == "key":
            key = ex.key_header or ex.query_key
            if key is None:
                raise AuthError("missing", "an API key is required (apikey or X-API-Key header)")
            consumer = self.keys.lookup(key)
            if consumer is None:
                raise AuthError("invalid", "the API key is not valid")
        else:
            auth = ex.auth_header
            if self.jwt is None or auth is None or not auth[:7].lower() == b"bearer ":
                raise AuthError("missing", "a bearer token is required")
            claims = self.jwt.verify(auth[7:].strip().decode("latin-1"))
            value = claims.get(self.jwt.consumer_claim)
            consumer = str(value) if value is not None else ""
        if route.allow is not None and consumer not in route.allow:
            raise AuthError("not_allowed", f"consumer {consumer!r} may not use this route")
        return consumer

    def security_event(
        self, route: str, reason: str, client_ip: str, method: str, path: str
    ) -> None:
        self.metrics.auth_failure(route, reason)
        emit, suppressed = self.security_log_budget.take(f"{route}\0{reason}", time.monotonic())
        if suppressed:
            security_log.warning(
                "auth refused: route=%s reason=%s: %d more refusals were not logged "
                "(at most %d lines per %gs; hypercare_auth_failures_total counts all)",
                route,
                reason,
                suppressed,
                self.security_log_budget.per_window,
                self.security_log_budget.window,
            )
        if emit:
            security_log.warning(
                "auth refused: route=%s reason=%s client_ip=%s method=%s path=%s",
                route,
                reason,
                client_ip,
                method,
                path,
            )

    def passive_failure(self, target: object) -> None:
        if not isinstance(target, Target):
            return
        for u in self.upstreams.values():
            if target.address in u.pools and u.pools[target.address].target is target:
                if record_failure(target, u.passive, time.monotonic()):
                    log.warning("target %s of upstream %s ejected", target.address, u.name)
                return

    def client_address(self, peer: str, xff: bytes | None) -> tuple[str, bytes | None]:
        if not self.trusted:
            return peer, None
        return hdr.client_address(peer, xff, self.trusted)

    def emit_captured(self, record: CallRecord, tap: Tap, ex: Exchange) -> None:
        """Emit a record with its capture, when its policy keeps one."""
        capture = None
        if self.capture is not None:
            try:
                capture = self.capture.finish(tap, ex)
            except Exception as exc:  # a capture must never cost the record or the request
                # the exception's text could quote captured bytes: only its type is logged
                log.error("capturing call %s failed (%s)", record.request_id, type(exc).__name__)
        self.emit(record, capture)

    def emit(self, record: CallRecord, capture: CallCapture | None = None) -> None:
        self.metrics.emit(record)
        if self.sink is not None:
            try:
                if capture is None:
                    self.sink.emit(record)
                else:
                    self.sink.emit(record, capture)
            except Exception:  # a broken sink must not break proxying
                log.exception("record sink failed")

    # --- views -------------------------------------------------------------------------------

    def target_health(self) -> list[tuple[str, str, bool]]:
        now = time.monotonic()
        return [
            (u.name, t.address, t.available(now))
            for u in self.upstreams.values()
            for t in u.targets
        ]

    def targets_json(self) -> bytes:
        now = time.monotonic()
        view = {
            u.name: [
                {
                    "target": t.address,
                    "weight": t.weight,
                    "in_rotation": t.available(now),
                    "active_check": "healthy" if t.healthy else "unhealthy",
                    "ejected_for_s": round(max(0.0, t.ejected_until - now), 3),
                    "in_flight": t.active,
                    "idle_connections": len(u.pools[t.address].idle),
                }
                for t in u.targets
            ]
            for u in self.upstreams.values()
        }
        return json.dumps({"upstreams": view}).encode()

    def gauges(self) -> list[tuple[str, str, float]]:
        fallbacks = self.redis_limiter.fallbacks if self.redis_limiter is not None else 0
        return [
            (
                "hypercare_gateway_connections",
                "Open client connections.",
                float(len(self.connections)),
            ),
            (
                "hypercare_ratelimit_redis_fallbacks",
                "Rate-limit checks answered locally because Redis failed (since start).",
                float(fallbacks),
            ),
        ]

    def render_metrics(self) -> bytes:
        return self.metrics.render(self.target_health(), self.gauges).encode()


def connection_factory(gw: Gateway) -> Callable[[], ClientConnection]:
    return lambda: ClientConnection(gw)

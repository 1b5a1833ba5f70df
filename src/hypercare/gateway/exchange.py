"""One request's journey through the gateway, as a chain of callbacks rather than a task.

An `Exchange` is created by the client side (`server.ClientConnection`, which it knows only
as a `Downstream`: what it writes to, which deadline it sets) when a request head is parsed,
and runs when it reaches the head of its connection's queue: route → auth → rate limit →
target → pooled or new upstream connection → stream the request body → stream the response →
call record. It is the `UpstreamOwner` its upstream connection reports to. Only opening a
new upstream connection and a Redis rate-limit check await anything.
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol

from hypercare.gateway import checks
from hypercare.gateway import headers as hdr
from hypercare.gateway.auth import AuthError
from hypercare.gateway.balancer import Target
from hypercare.gateway.records import CallRecord
from hypercare.gateway.upstream import UpstreamConnection

if TYPE_CHECKING:
    from hypercare.gateway.capture import Tap
    from hypercare.gateway.ratelimit import Decision
    from hypercare.gateway.routes import RouteState, UpstreamState
    from hypercare.gateway.runtime import Gateway


class Downstream(Protocol):
    """The client side of an exchange, as the exchange sees it (`server.ClientConnection`)."""

    gw: Gateway
    closed: bool
    draining: bool
    # the one deadline the sweeper enforces for this connection, and what it is for
    deadline: float
    deadline_kind: str
    # the exchange being answered, and the one that became a tunnel
    current: Exchange | None
    tunnel: Exchange | None

    def write(self, data: bytes) -> None: ...

    def writelines(self, data: tuple[bytes, ...]) -> None: ...

    def cork(self) -> bool: ...

    def uncork(self) -> None: ...

    def pause(self, reason: int) -> None: ...

    def resume(self, reason: int) -> None: ...

    def close(self) -> None: ...

    def exchange_done(self, ex: Exchange) -> None: ...


_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_REASONS = {
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}
_BUFFER_LIMIT = 256 * 1024  # request body bytes held while no upstream is connected
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Pause reasons for reading from the client (a bit each; reading resumes when all clear).
PAUSE_UPSTREAM = 1  # upstream write buffer full
PAUSE_BUFFER = 2  # too much body buffered while waiting
PAUSE_TUNNEL = 4


class Exchange:
    """One request/response through the gateway, from its head to its call record."""

    __slots__ = (
        "auth_header",
        "bad",
        "body_done",
        "buffered",
        "buffered_size",
        "chunked",
        "client",
        "client_ip",
        "close_after",
        "conn",
        "consumer",
        "content_length",
        "error",
        "expect_continue",
        "extra_hop",
        "finished",
        "hash_value",
        "headers",
        "host",
        "keep_alive",
        "key_header",
        "method",
        "origin",
        "path",
        "prior_xff",
        "query_key",
        "request_bytes",
        "response_bytes",
        "response_chunked",
        "response_started",
        "retries_left",
        "rid",
        "rl_headers",
        "route",
        "started",
        "status",
        "t0",
        "t_up",
        "t_up_end",
        "t_up_headers",
        "tap",
        "target",
        "template",
        "time",
        "tparent",
        "trace_id",
        "tunnel",
        "upgrade",
        "upgrade_value",
        "url",
        "user_agent",
        "version",
        "waiting_headers",
        "ws_key",
        "xrid",
    )

    def __init__(self, client: Downstream) -> None:
        self.client = client
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = "GET"
        self.host: bytes | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.extra_hop: frozenset[bytes] = frozenset()
        self.key_header: bytes | None = None
        self.auth_header: bytes | None = None
        self.query_key: bytes | None = None
        self.origin = False
        self.prior_xff: bytes | None = None
        self.xrid: bytes | None = None
        self.tparent: bytes | None = None
        self.user_agent = ""
        self.upgrade = False
        self.upgrade_value: bytes | None = None
        self.ws_key: bytes | None = None
        self.hash_value = ""
        self.bad: tuple[int, str, str, str] | None = None  # status, kind, code, message
        self.version = "1.1"
        self.keep_alive = True
        self.body_done = False
        self.buffered: list[bytes] = []
        self.buffered_size = 0
        self.request_bytes = 0
        self.response_bytes = 0
        self.response_started = False
        self.response_chunked = False
        self.started = False
        self.conn: UpstreamConnection | None = None
        self.target: Target | None = None
        self.route: RouteState | None = None
        self.template = ""
        self.consumer = ""
        self.status = 0
        self.t0 = 0.0
        self.t_up = 0.0
        self.t_up_headers = 0.0
        self.t_up_end = 0.0
        self.time = 0.0
        self.rid = b""
        self.trace_id = ""
        self.retries_left = 0
        self.waiting_headers = False
        self.client_ip = ""
        self.path = ""
        self.error = ""
        self.tunnel = False
        self.close_after = False
        self.finished = False
        self.rl_headers = b""
        self.tap: Tap | None = None  # set when this call's bodies are being captured

    # --- request body from the client -----------------------------------------------------

    def request_body(self, data: bytes) -> None:
        self.request_bytes += len(data)
        tap = self.tap
        if tap is not None:
            tap.request(data)
        route = self.route
        if route is not None and self.request_bytes > route.max_body and self.bad is None:
            if self.started:
                self.bad = (413, "too_large", "body_too_large", "the request body is too large")
                self.abort("too_large", 413, "body_too_large", "the request body is too large")
            else:
                self.bad = (413, "too_large", "body_too_large", "the request body is too large")
                self.buffered.clear()
                self.buffered_size = 0
            return
        if self.bad is not None:
            return  # discarded: the response is an error and the connection will close
        if self.chunked and not self.tunnel:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        conn = self.conn
        if conn is not None:
            conn.write(data)
            if not self.response_started:
                self._await_client_body()
        else:
            self.buffered.append(data)
            self.buffered_size += len(data)
            if self.buffered_size > _BUFFER_LIMIT:
                self.client.pause(PAUSE_BUFFER)

    def request_complete(self) -> None:
        self.body_done = True
        if self.chunked and self.bad is None:
            conn = self.conn
            if conn is not None:
                conn.write(b"0\r\n\r\n")
            else:
                self.buffered.append(b"0\r\n\r\n")
        if self.conn is not None and not self.response_started:
            self._await_response()

    def _await_client_body(self) -> None:
        """The next move is the client's (more body): time it with the client body timeout."""
        client = self.client
        client.deadline = time.monotonic() + client.gw.client_body_timeout
        client.deadline_kind = "client_body"

    def _await_response(self) -> None:
        """The next move is the upstream's (read the body, answer): the route's response time."""
        route = self.route
        client = self.client
        client.deadline = time.monotonic() + route.response if route is not None else 0.0
        client.deadline_kind = "response"

    # --- the upstream's answer (UpstreamOwner) ----------------------------------------------

    def upstream_headers(self, conn: UpstreamConnection) -> None:
        now = time.monotonic()
        self.t_up_headers = now
        self.status = conn.status
        target = self.target
        if target is not None:
            target.consecutive_failures = 0
        client = self.client
        client.deadline = now + self.route.idle if self.route is not None else 0.0
        client.deadline_kind = "idle"
        status = conn.status
        if self.method == "HEAD" or status in (204, 304):
            framing = (
                b"content-length: %b\r\n" % conn.content_length
                if conn.content_length is not None and status != 204
                else b""
            )
        elif conn.content_length is not None:
            framing = b"content-length: %b\r\n" % conn.content_length
        elif self.version == "1.1":
            framing = b"transfer-encoding: chunked\r\n"
            self.response_chunked = True
        else:
            framing = b""
            self.keep_alive = False  # HTTP/1.0 client: the close delimits the body
        if self.upgrade:
            self.keep_alive = False  # upgrade refused: the client may already send other bytes
        if client.draining or self.close_after or not self.body_done:
            # A response that starts before its request ended (early error from the
            # upstream) leaves the request body unread: the connection cannot be reused.
            self.keep_alive = self.keep_alive and self.body_done and not client.draining
        if self.keep_alive and self.version == "1.0":
            framing += b"connection: keep-alive\r\n"  # HTTP/1.0 closes unless told otherwise
        latency = (self.t_up - self.t0) * 1000.0
        head = hdr.downstream_response_head(
            b"HTTP/1.1 %d %b\r\n" % (status, _reason(conn, status)),
            conn.headers,
            rid=self.rid,
            latency_ms=latency if latency > 0 else 0.0,
            framing=framing + self.rl_headers,
            extra_hop=conn.extra_hop,
            origin=self.origin,
            keep_alive=self.keep_alive,
            expose=conn.expose,
        )
        self.response_started = True
        if self.tap is not None:
            self.tap.response_headers = list(conn.headers)
        client.write(head)

    def upstream_body(self, data: bytes) -> None:
        self.response_bytes += len(data)
        tap = self.tap
        if tap is not None:
            tap.response(data)
        client = self.client
        route = self.route
        if route is not None and not self.tunnel:
            client.deadline = time.monotonic() + route.idle
        if self.response_chunked:
            client.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            client.write(data)

    def upstream_complete(self) -> None:
        self.t_up_end = time.monotonic()
        if not self.body_done and self.conn is not None:
            # The upstream answered before reading our whole request: the rest of the body
            # would be read as the next request, so the connection is not reused.
            self.conn.release_failed()
        if self.response_chunked:
            self.client.write(b"0\r\n\r\n")
        conn = self.conn
        self.conn = None
        if self.target is not None:
            self.target.active -= 1
        if self.tunnel and conn is not None:
            self.client.close()
        self.finish()

    def upstream_upgraded(self, rest: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        refused = checks.check_switch(self.upgrade, self.ws_key, conn.upgrade_value, conn.headers)
        if refused is not None:
            # Never a tunnel the gateway did not ask for: such a tunnel would carry requests
            # past routing, auth, limits and records. The upstream broke the protocol.
            self.t_up_end = time.monotonic()
            conn.release_failed()
            self.conn = None
            target = self.target
            if target is not None:
                target.active -= 1
                self.client.gw.passive_failure(target)
            self.abort("bad_response", 502, "bad_handshake", refused)
            return
        self.t_up_headers = time.monotonic()
        self.status = 101
        self.tunnel = True
        head = hdr.downstream_response_head(
            b"HTTP/1.1 101 Switching Protocols\r\n",
            conn.headers,
            rid=self.rid,
            latency_ms=0.0,
            framing=b"",
            origin=self.origin,
            keep_alive=True,
            expose=conn.expose,
            upgrade=conn.upgrade_value or self.upgrade_value or b"websocket",
        )
        self.response_started = True
        client = self.client
        client.write(head)
        client.deadline = 0.0
        client.tunnel = self
        if rest:
            client.write(rest)
        if self.buffered:
            for chunk in self.buffered:
                conn.write(chunk)
            self.buffered.clear()
            self.buffered_size = 0
        client.resume(PAUSE_BUFFER | PAUSE_TUNNEL)

    def upstream_failed(self, kind: str, before_response: bool) -> None:
        conn = self.conn
        self.conn = None
        target = self.target
        if target is not None:
            target.active -= 1
        gw = self.client.gw
        if (
            before_response
            and conn is not None
            and conn.reused
            and self.request_bytes == 0
            and self.body_done
            and self.method in _IDEMPOTENT
        ):
            # A pooled connection the upstream closed while we sent on it (RFC 9112 §9.3.1).
            self.target = None
            self.proceed_with(None)
            return
        if target is not None and kind in ("reset", "bad_response", "timeout"):
            gw.passive_failure(target)
        if self.tunnel:
            self.client.close()
            self.finish()
            return
        if kind == "timeout":
            self.abort(kind, 504, "upstream_timeout", "the upstream did not answer in time")
        elif kind == "bad_response":
            self.abort(kind, 502, "bad_response", "the upstream sent an invalid response")
        else:
            self.abort(kind, 502, "upstream_reset", "the upstream closed the connection")

    def cork(self) -> bool:
        return self.client.cork()

    def uncork(self) -> None:
        self.client.uncork()

    def upstream_pause_writing(self) -> None:
        self.client.pause(PAUSE_UPSTREAM)
        if not self.response_started and not self.tunnel:
            self._await_response()  # the upstream is not taking the body: its wait now

    def upstream_resume_writing(self) -> None:
        self.client.resume(PAUSE_UPSTREAM)
        if not self.response_started and not self.tunnel and not self.body_done:
            self._await_client_body()

    # --- running the exchange ------------------------------------------------------------

    def start(self) -> None:
        """This exchange is now at the head of the queue: answer it."""
        self.started = True
        client = self.client
        gw = client.gw
        if self.bad is not None:
            status, kind, code, message = self.bad
            self.reply(status, kind, code, message)
            return
        route = self.route
        if route is None:  # checked in headers_complete; here for the type checker
            self.reply(404, "no_route", "no_route", "no route matches this request")
            return
        if route.auth != "none":
            try:
                self.consumer = gw.authenticate(route, self)
            except AuthError as exc:
                status = 403 if exc.reason == "not_allowed" else 401
                gw.security_event(route.name, exc.reason, self.client_ip, self.method, self.path)
                self.reply(
                    status, "auth", "unauthorized" if status == 401 else "forbidden", exc.message
                )
                return
        if route.rate_limit is not None:
            rl = route.rate_limit
            key = self.consumer if rl.by == "consumer" else self.client_ip if rl.by == "ip" else ""
            key = f"{route.name}|{key}"
            limiter = gw.redis_limiter
            if limiter is None:
                self.after_rate_limit(gw.local_limiter.check(key, rl.limit, rl.period))
            else:
                fut = asyncio.ensure_future(limiter.check(key, rl.limit, rl.period))
                fut.add_done_callback(self._rate_limit_done)
            return
        self.proceed()

    def _rate_limit_done(self, fut: asyncio.Future[Decision]) -> None:
        if self.client.closed or self.finished:
            return
        try:
            decision = fut.result()
        except Exception:  # the limiter falls back itself; anything else must not block traffic
            self.proceed()
            return
        self.after_rate_limit(decision)

    def after_rate_limit(self, decision: Decision) -> None:
        if not decision.allowed:
            gw = self.client.gw
            if self.route is not None:
                gw.metrics.limited(self.route.name)
            self.reply(429, "rate_limited", "rate_limited", "too many requests", decision.headers())
            return
        self.rl_headers = decision.headers()
        self.proceed()

    def proceed(self) -> None:
        self.proceed_with(None)

    def proceed_with(self, exclude: Target | None) -> None:
        route = self.route
        if route is None:
            return
        ups: UpstreamState = route.upstream
        now = time.monotonic()
        key = ""
        if ups.hash_source is not None:
            key = self.client_ip if ups.hash_source == "ip" else self.hash_value
        target = ups.balancer.pick(now, key, exclude)
        if target is None and exclude is not None:
            target = ups.balancer.pick(now, key, None)  # a retry may reuse the only target
        if target is None:
            self.reply(
                503,
                "no_healthy_target",
                "no_healthy_target",
                f"upstream {ups.name!r} has no healthy target",
            )
            return
        self.target = target
        target.active += 1
        if not self.t_up:
            self.t_up = now
        if self.expect_continue and not self.body_done and not self.buffered:
            self.expect_continue = False
            self.client.write(_CONTINUE)
        pool = ups.pools[target.address]
        conn = pool.take()
        if conn is not None:
            self.send_on(conn)
            return
        client = self.client
        client.deadline = now + route.connect
        client.deadline_kind = "connect"
        fut = asyncio.ensure_future(client.gw.connect(pool, route.connect))
        fut.add_done_callback(self._connected)

    def _connected(self, fut: asyncio.Future[UpstreamConnection]) -> None:
        client = self.client
        if fut.cancelled() or fut.exception() is not None:
            target = self.target
            if target is not None:
                target.active -= 1
            if client.closed or self.finished:
                return
            exc = None if fut.cancelled() else fut.exception()
            kind = (
                "timeout" if fut.cancelled() or isinstance(exc, TimeoutError) else "connect_failed"
            )
            gw = client.gw
            if target is not None:
                gw.passive_failure(target)
            if self.retries_left > 0 and self.method in _IDEMPOTENT:
                self.retries_left -= 1
                self.target = None
                self.proceed_with(target)
                return
            self.target = None
            self.error = kind
            if kind == "timeout":
                self.reply(
                    504, kind, "connect_timeout", "the upstream did not accept a connection in time"
                )
            else:
                self.reply(502, kind, "connect_failed", "the upstream refused the connection")
            return
        conn = fut.result()
        if client.closed or self.finished:
            conn.pool.put(conn)
            if self.target is not None:
                self.target.active -= 1
                self.target = None
            return
        self.send_on(conn)

    def send_on(self, conn: UpstreamConnection) -> None:
        route = self.route
        if route is None:
            return
        self.conn = conn
        client = self.client
        if self.body_done:
            self._await_response()
        else:
            self._await_client_body()
        if self.upgrade:
            framing = b""
        elif self.chunked:
            framing = b"transfer-encoding: chunked\r\n"
        elif self.content_length is not None:
            framing = b"content-length: %d\r\n" % self.content_length
        else:
            framing = b""
        url = self.url
        if route.strip_prefix and route.prefix:
            rest = url[len(route.prefix) - 1 :] if url.startswith(route.prefix.encode()) else b"/"
            url = rest if rest.startswith(b"/") else b"/" + rest
        head = hdr.upstream_request_head(
            self.method.encode(),
            url,
            self.headers,
            host=self.host or b"",
            client_ip=self.client_ip,
            prior_xff=self.prior_xff,
            proto=b"http",
            rid=self.rid,
            tparent=self.tparent or b"",
            framing=framing,
            extra_hop=self.extra_hop,
            upgrade=self.upgrade_value if self.upgrade else None,
        )
        conn.send(self, head, self.method == "HEAD")
        if self.buffered:
            conn.transport.writelines(self.buffered) if conn.transport is not None else None
            self.buffered.clear()
            self.buffered_size = 0
            client.resume(PAUSE_BUFFER)

    # --- endings ---------------------------------------------------------------------------

    def reply(self, status: int, kind: str, code: str, message: str, extra: bytes = b"") -> None:
        """Answer with the gateway's own JSON error (or nothing left to say: just finish)."""
        self.status = status
        self.error = kind
        body = hdr.error_body(code, message)
        client = self.client
        # An unread request body makes the connection unusable (the body would be parsed as
        # the next request), so errors before the body is consumed close the connection.
        keep = self.keep_alive and self.body_done and not client.draining and kind != "bad_request"
        if status in (400, 408, 413, 431):
            keep = False
        self.keep_alive = keep
        expose = b"access-control-expose-headers: X-Request-Id\r\n" if self.origin else b""
        client.write(
            b"HTTP/1.1 %d %b\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"x-request-id: %b\r\n%b%b%b\r\n%b"
            % (
                status,
                _REASONS.get(status, b"Error"),
                len(body),
                self.rid or hdr.new_id128().encode(),
                expose,
                extra,
                b"" if keep else b"connection: close\r\n",
                b"" if self.method == "HEAD" else body,
            )
        )
        self.response_started = True
        self.response_bytes = len(body)
        if self.tap is not None:
            self.tap.reply(body)
        self.finish()

    def abort(self, kind: str, status: int, code: str, message: str) -> None:
        """Give up mid-flight: drop the upstream connection and answer or cut the client."""
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.release_failed()
            if self.target is not None:
                self.target.active -= 1
        if self.response_started:
            self.error = kind
            self.keep_alive = False
            self.finish()
            self.client.close()
        else:
            self.close_after = True
            self.keep_alive = False
            self.reply(status, kind, code, message)

    def finish(self) -> None:
        """Emit the call record and let the connection move to its next request."""
        client = self.client
        if client.current is not self or self.finished:
            return
        self.finished = True
        now = time.monotonic()
        route = self.route
        total = (now - self.t0) * 1000.0
        # A call that failed upstream (timeout, reset) spent its waiting time upstream, not in
        # the gateway: count it there so gateway_ms stays the gateway's own overhead.
        upstream = ((self.t_up_end or now) - self.t_up) * 1000.0 if self.t_up else 0.0
        if not self.error and not self.body_done:
            self.keep_alive = False
        target = self.target
        record = CallRecord(
            self.time,
            route.name if route is not None else "",
            self.consumer,
            self.method,
            self.template,
            self.path,
            self.status,
            self.request_bytes,
            self.response_bytes,
            target.address if target is not None else "",
            total - upstream,
            upstream,
            total,
            self.error,
            self.client_ip,
            self.rid.decode("latin-1"),
            self.trace_id,
            route.upstream.name if route is not None else "",
            self.user_agent,
        )
        tap = self.tap
        if tap is None:
            client.gw.emit(record)
        else:
            client.gw.emit_captured(record, tap, self)
        client.exchange_done(self)


_PHRASES = {s.value: s.phrase.encode() for s in HTTPStatus}


def _reason(conn: UpstreamConnection, status: int) -> bytes:
    return _PHRASES.get(status, b"Unknown")

"""The client side of the proxy: one protocol per client connection, one exchange per request.

`ClientConnection` parses requests with httptools and queues them as `Exchange`s; the head of
the queue is the one being proxied, the others (pipelined requests) wait with their bodies
buffered, so responses go out in request order (RFC 9112 §9.3.2). An exchange runs as a chain of
callbacks, not as a task: route → auth → rate limit → target → pooled or new upstream connection
→ stream the request body → stream the response → call record. Only opening a new upstream
connection and a Redis rate-limit check await anything.

Flow control is end to end: a full upstream write buffer pauses reading from the client and a
full client write buffer pauses reading from the upstream, so a 200 MB body moves with flat
memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from hypercare.gateway import checks
from hypercare.gateway import headers as hdr
from hypercare.gateway.exchange import PAUSE_BUFFER, PAUSE_TUNNEL, PAUSE_UPSTREAM, Exchange

if TYPE_CHECKING:
    from hypercare.gateway.runtime import Gateway

log = logging.getLogger("hypercare.gateway")


class ClientConnection(asyncio.Protocol):
    """One client TCP connection: parses requests and runs their exchanges in order."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.closed = False
        self.draining = False
        self.queue: deque[Exchange] = deque()
        self.starting = False
        self.current: Exchange | None = None
        self.parsing: Exchange | None = None
        self.head_bytes = 0
        self.head_fields = 0
        self.deadline = 0.0
        self.deadline_kind = ""
        self.paused = 0
        self.write_paused = False
        self.tunnel: Exchange | None = None
        # A declined upgrade with a body: httptools tells llhttp to skip the body of any
        # request that asks to upgrade, so it is read by a fresh parser fed a synthetic head.
        self.body_after_upgrade: Exchange | None = None
        self.body_only: Exchange | None = None
        self.in_head = False
        self.head_raw = 0
        self.corked: list[bytes] | None = None
        self.too_large = False
        self.too_large_message = "the request head is too large"
        self.broken = False  # the byte stream is unparseable: answer what is queued, then close

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.gw.connections.add(self)
        self.deadline = time.monotonic() + self.gw.header_timeout
        self.deadline_kind = "keepalive"

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            conn = tunnel.conn
            if conn is not None:
                conn.write(data)
            return
        if self.broken:
            return
        if self.current is None and self.deadline_kind == "keepalive":
            self.deadline = time.monotonic() + self.gw.header_timeout
            self.deadline_kind = "header"
        while True:
            try:
                self.parser.feed_data(data)
                if self.in_head:
                    # httptools buffers a header until it is complete, so one endless header
                    # never reaches on_header: bound the raw bytes of an unfinished head too.
                    self.head_raw += len(data)
                    if self.head_raw > 2 * self.gw.max_header_bytes + 65536:
                        self.too_large = True
                        raise HeaderTooLarge
            except httptools.HttpParserUpgrade as exc:
                rest = data[exc.args[0] :]
                ex = self.parsing
                if ex is not None and ex.upgrade:
                    # A WebSocket handshake the route takes: what follows belongs to the tunnel.
                    self.parsing = None
                    if rest:
                        ex.buffered.append(rest)
                        ex.buffered_size += len(rest)
                    self.broken = True  # no more HTTP on this connection
                    self.pause(PAUSE_TUNNEL)
                    return
                # An upgrade the gateway declined: that request was complete and is proxied
                # as a plain one, so what follows is HTTP again. llhttp stops for good at an
                # upgrade, hence a fresh parser for the rest (a loop, not recursion: one read
                # may hold many such requests).
                self.parser = httptools.HttpRequestParser(self)
                pending = self.body_after_upgrade
                if pending is not None:
                    self.body_after_upgrade = None
                    self.body_only = pending
                    framing = (
                        b"transfer-encoding: chunked"
                        if pending.chunked
                        else b"content-length: %d" % (pending.content_length or 0)
                    )
                    self.parser.feed_data(b"PUT / HTTP/1.1\r\nhost: body\r\n%b\r\n\r\n" % framing)
                if rest:
                    data = rest
                    continue
            except httptools.HttpParserError as exc:
                self._parser_failed(exc)
            return

    def _parser_failed(self, exc: httptools.HttpParserError) -> None:
        if self.too_large:
            self._bad_stream(431, "too_large", "header_too_large", self.too_large_message)
        else:
            if isinstance(exc, httptools.HttpParserCallbackError):
                # One of our callbacks raised: a gateway bug, not the client's fault. The
                # connection is answered and closed; the worker keeps serving.
                log.error("request callback failed", exc_info=exc.__context__ or exc)
            self._bad_stream(400, "bad_request", "bad_request", _parser_message(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gw.connections.discard(self)
        ex = self.current
        if ex is not None:
            conn = ex.conn
            ex.conn = None
            if conn is not None:
                if ex.tunnel:
                    conn.close()
                else:
                    conn.release_failed()
                if ex.target is not None:
                    ex.target.active -= 1
            if not ex.error:
                ex.error = "client_closed"
                if not ex.response_started:
                    ex.status = 499
            ex.finish()
        self.queue.clear()
        self.current = None

    def pause_writing(self) -> None:
        self.write_paused = True
        ex = self.current
        if ex is not None and ex.conn is not None:
            ex.conn.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.current
        if ex is not None and ex.conn is not None:
            ex.conn.resume_reading()

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.body_only is not None:
            self.parsing = None  # the synthetic head before a declined upgrade's body
            return
        ex = Exchange(self)
        self.parsing = ex
        self.head_bytes = 0
        self.head_fields = 0
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        ex = self.parsing
        if ex is None:
            return
        ex.url += url
        self.head_bytes += len(url)
        if self.head_bytes > self.gw.max_header_bytes:
            self.too_large = True
            raise HeaderTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.parsing
        if ex is None:
            return
        self.head_bytes += len(name) + len(value) + 4
        self.head_fields += 1
        if self.head_bytes > self.gw.max_header_bytes:
            self.too_large = True
            raise HeaderTooLarge
        if self.head_fields > self.gw.max_headers:
            # Many tiny fields cost more per byte than a few big ones (every one is a tuple,
            # a lookup and a line upstream): their number is bounded on its own.
            self.too_large = True
            self.too_large_message = f"more than {self.gw.max_headers} header fields"
            raise HeaderTooLarge
        lname = name.lower()
        special = _SPECIAL.get(lname)
        if special is None:
            ex.headers.append((name, value))
            return
        if special == 1:  # host
            if ex.host is not None:
                ex.bad = (400, "bad_request", "bad_request", "more than one Host header")
            ex.host = value
        elif special == 2:  # content-length (llhttp already refused duplicates and junk)
            ex.content_length = int(value)
        elif special == 3:
            ex.chunked = True
            if value.strip().lower() != b"chunked":
                # The gateway re-frames bodies, so a transfer coding other than chunked
                # alone cannot be passed on faithfully (RFC 9112 §6.1: 501 for unknown codings).
                ex.bad = (501, "bad_request", "not_implemented", "only chunked transfer coding")
        elif special == 4:  # connection
            tokens = hdr.connection_tokens((value,))
            ex.extra_hop = ex.extra_hop | (tokens - {b"close", b"keep-alive", b"upgrade"})
        elif special == 5:
            ex.upgrade_value = value
        elif special == 6:
            ex.xrid = value
        elif special == 7:
            ex.tparent = value
        elif special == 8:
            ex.prior_xff = value if ex.prior_xff is None else ex.prior_xff + b", " + value
        elif special == 9:  # apikey / x-api-key: the credential itself is never forwarded
            ex.key_header = value
        elif special == 10:
            ex.auth_header = value
            ex.headers.append((name, value))
        elif special == 11:
            ex.origin = True
            ex.headers.append((name, value))
        elif special == 12:  # expect
            if value.lower() == b"100-continue":
                ex.expect_continue = True
            else:
                ex.bad = (
                    417,
                    "bad_request",
                    "expectation_failed",
                    "only 100-continue is supported",
                )
        elif special == 13:
            ex.user_agent = value.decode("latin-1")
            ex.headers.append((name, value))
        elif special == 14:  # sec-websocket-key: kept to check the upstream's accept value
            ex.ws_key = value if ex.ws_key is None else b""  # a second one: invalid
            ex.headers.append((name, value))
        # everything else in _SPECIAL is hop-by-hop or replaced: dropped

    def on_headers_complete(self) -> None:
        ex = self.parsing
        self.in_head = False
        self.head_raw = 0
        if ex is None:
            if self.body_only is not None:  # what follows is that exchange's body
                self.parsing, self.body_only = self.body_only, None
            return
        gw = self.gw
        now = time.monotonic()
        ex.t0 = now
        ex.time = time.time()
        parser = self.parser
        ex.method = method = parser.get_method().decode("ascii", "replace")
        ex.version = version = parser.get_http_version()
        ex.keep_alive = parser.should_keep_alive() and not self.draining
        # Connection: upgrade + Upgrade. Decided below, once the route is known; until then
        # no upgrade is honoured.
        wants_upgrade = parser.should_upgrade() and ex.upgrade_value is not None
        ex.upgrade = False
        ex.rid = hdr.request_id(ex.xrid)
        ex.trace_id, ex.tparent = hdr.traceparent(ex.tparent)
        ex.client_ip, ex.prior_xff = gw.client_address(self.peer, ex.prior_xff)
        if ex.hash_value == "" and gw.hash_headers:
            for name, value in ex.headers:
                if name.lower() in gw.hash_headers:
                    ex.hash_value = value.decode("latin-1")
                    break
        url = ex.url
        q = url.find(b"?")
        raw_path = url if q < 0 else url[:q]
        if ex.bad is None:
            ex.bad = checks.check_head(method, version, raw_path, ex.host is not None)
        path = raw_path.decode("latin-1")
        ex.path = path
        if ex.bad is None:
            m = gw.router.match(method, path)
            route = m.route
            ex.bad = checks.check_route(
                method,
                matched=route is not None,
                method_not_allowed=m.method_not_allowed,
                content_length=ex.content_length,
                max_body=route.max_body if route is not None else 0,
            )
            if route is not None:
                ex.route = route
                ex.template = m.template
                ex.retries_left = route.retries
                if q >= 0 and route.auth == "key":
                    # consumed here like the apikey header: never forwarded nor recorded
                    ex.url, ex.query_key = hdr.take_query_key(url)
                if wants_upgrade and ex.bad is None:
                    verdict = checks.websocket_upgrade(
                        ex.upgrade_value,
                        allowed=route.websocket,
                        method=method,
                        version=version,
                        key=ex.ws_key,
                        has_body=ex.chunked or bool(ex.content_length),
                    )
                    if isinstance(verdict, checks.Refusal):
                        ex.bad = verdict
                    else:
                        ex.upgrade = verdict
                        ex.upgrade_value = b"websocket" if verdict else None
        if wants_upgrade and not ex.upgrade and (ex.chunked or ex.content_length):
            self.body_after_upgrade = ex
        if ex.content_length is None and not ex.chunked:
            ex.body_done = True  # no body at all (RFC 9112 §6.3 rule 7)
        if ex.host is None:
            ex.host = b""
        capture = gw.capture
        if capture is not None:
            ex.tap = capture.begin(ex.route.name if ex.route is not None else "")
        self.queue.append(ex)
        if self.current is None:
            self.deadline = 0.0
            self.deadline_kind = ""
            self._start_next()

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        if ex is not None:
            ex.request_body(body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        if ex is not None and not ex.upgrade and ex is not self.body_after_upgrade:
            self.parsing = None
            ex.request_complete()

    # --- exchanges ---------------------------------------------------------------------------

    def _start_next(self) -> None:
        # Exchanges answered synchronously (errors, 404s) finish inside start(); the loop, not
        # recursion, moves to the next one, so a long pipeline cannot exhaust the stack.
        if self.starting:
            return
        self.starting = True
        try:
            while self.queue and self.current is None and not self.closed:
                ex = self.queue.popleft()
                self.current = ex
                ex.start()
            if self.broken and self.current is None and not self.queue and not self.closed:
                self._send_pending_error()
        finally:
            self.starting = False

    def exchange_done(self, ex: Exchange) -> None:
        if self.current is not ex:
            return
        self.current = None
        if self.closed:
            return
        if not ex.keep_alive or ex.upgrade or (self.draining and not self.queue):
            self.close()
            return
        if self.queue or self.broken:
            self._start_next()
        else:
            self.deadline = time.monotonic() + self.gw.keepalive_timeout
            self.deadline_kind = "keepalive"
            self.resume(PAUSE_BUFFER)

    def _bad_stream(self, status: int, kind: str, code: str, message: str) -> None:
        """The parser gave up: the connection closes after answering what is queued."""
        self.broken = True
        self._pending_error = (status, kind, code, message)
        ex = self.parsing
        self.parsing = None
        if ex is not None and ex in self.queue:
            self.queue.remove(ex)
        elif ex is not None and ex is self.current:
            # The body of the request being proxied turned out malformed: the upstream got a
            # partial request, so neither connection can be trusted.
            ex.abort(kind, status, code, message)
            return
        if self.current is None and not self.queue:
            self._send_pending_error()

    _pending_error: tuple[int, str, str, str] = (400, "bad_request", "bad_request", "")

    def _send_pending_error(self) -> None:
        ex = Exchange(self)
        ex.t0 = time.monotonic()
        ex.time = time.time()
        ex.client_ip = self.peer
        ex.rid = hdr.new_id128().encode()
        ex.keep_alive = False
        ex.body_done = True
        self.current = ex
        status, kind, code, message = self._pending_error
        ex.reply(status, kind, code, message)

    def on_timeout(self, now: float) -> None:
        """The sweeper found this connection past its deadline."""
        kind = self.deadline_kind
        self.deadline = 0.0
        ex = self.current
        if kind == "keepalive":
            self.close()
        elif kind == "header":
            if self.in_head:
                self._bad_stream(
                    408, "bad_request", "request_timeout", "the request head took too long"
                )
            else:
                self.close()
        elif ex is not None and kind == "connect":
            pass  # the connect coroutine has its own timeout
        elif ex is not None and kind == "client_body":
            if self.paused & PAUSE_UPSTREAM:
                # Reading from the client stopped because the upstream is not taking the body:
                # that wait is the upstream's (the exchange re-arms "response" when pausing,
                # so this is only a race with the sweeper).
                self.deadline = now + (ex.route.response if ex.route is not None else 0.0)
                self.deadline_kind = "response"
                return
            # The client declared a body and stopped sending it: its slowness, not the
            # upstream's. 408, the upstream connection dropped, no health state touched.
            ex.abort(
                "client_timeout",
                408,
                "client_body_timeout",
                "the request body stalled for longer than the client body timeout",
            )
        elif ex is not None and kind == "idle" and self.write_paused:
            # The response body stalled because the client stopped reading it (our write
            # buffer to it is full, so reading from the upstream is paused): the client's wait.
            ex.abort(
                "client_timeout",
                408,
                "client_read_timeout",
                "the client stopped reading the response",
            )
        elif ex is not None:
            ex.error = "timeout"
            if ex.target is not None and ex.conn is not None:
                self.gw.passive_failure(ex.target)
            ex.abort("timeout", 504, "upstream_timeout", "the upstream did not answer in time")

    # --- transport helpers -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        corked = self.corked
        if corked is not None:
            corked.append(data)
        elif self.transport is not None and not self.closed:
            self.transport.write(data)

    def writelines(self, data: tuple[bytes, ...]) -> None:
        corked = self.corked
        if corked is not None:
            corked.extend(data)
        elif self.transport is not None and not self.closed:
            self.transport.writelines(data)

    def cork(self) -> bool:
        """Collect writes until `uncork`: a response head and body leave in one send()."""
        if self.corked is None:
            self.corked = []
            return True
        return False

    def uncork(self) -> None:
        corked = self.corked
        self.corked = None
        if corked and self.transport is not None and not self.closed:
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def pause(self, reason: int) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def drain(self) -> None:
        """Stop taking new requests: close now if idle, else after the current response."""
        self.draining = True
        if self.current is None and not self.queue:
            self.close()

    def close(self) -> None:
        if self.corked:
            self.uncork()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


class HeaderTooLarge(httptools.HttpParserError):
    """Raised from a parser callback when the request head passes the configured limit."""


def _parser_message(exc: Exception) -> str:
    text = str(exc.__cause__ or exc) or "malformed request"
    return f"malformed request: {text}"


_SPECIAL: dict[bytes, int] = {
    b"host": 1,
    b"content-length": 2,
    b"transfer-encoding": 3,
    b"connection": 4,
    b"upgrade": 5,
    b"x-request-id": 6,
    b"traceparent": 7,
    b"x-forwarded-for": 8,
    b"apikey": 9,
    b"x-api-key": 9,
    b"authorization": 10,
    b"origin": 11,
    b"expect": 12,
    b"user-agent": 13,
    b"sec-websocket-key": 14,
    b"keep-alive": 0,
    b"proxy-connection": 0,
    b"te": 0,
    b"trailer": 0,
    b"proxy-authorization": 0,
    b"x-forwarded-proto": 0,
    b"x-forwarded-host": 0,
    b"forwarded": 0,
}

"""Upstream side: one keep-alive connection protocol and a per-target idle pool.

`UpstreamConnection` parses responses with httptools and hands events to its current owner (an
exchange in `server.py`) through a small interface, `UpstreamOwner`. It never decides anything
about the client: it only moves bytes and reports what it saw. When a response completes on a
connection that can be reused, the connection goes back to its target's pool (LIFO, so the
hottest connections are reused and the cold ones age out).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from hypercare.gateway.balancer import Target
from hypercare.gateway.headers import DROP_DOWNSTREAM, connection_tokens

_KEEP_ALIVE = frozenset({b"keep-alive"})


class UpstreamOwner(Protocol):
    """What an upstream connection reports to the exchange that uses it."""

    def upstream_headers(self, conn: UpstreamConnection) -> None: ...
    def upstream_body(self, data: bytes) -> None: ...
    def upstream_complete(self) -> None: ...
    def upstream_upgraded(self, rest: bytes) -> None: ...
    def upstream_failed(self, kind: str, before_response: bool) -> None: ...
    def upstream_pause_writing(self) -> None: ...
    def cork(self) -> bool: ...
    def uncork(self) -> None: ...
    def upstream_resume_writing(self) -> None: ...


class Pool:
    """Idle keep-alive connections to one target."""

    __slots__ = ("idle", "idle_timeout", "max_idle", "target")

    def __init__(self, target: Target, max_idle: int, idle_timeout: float) -> None:
        self.target = target
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.idle: list[UpstreamConnection] = []

    def take(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        if len(self.idle) >= self.max_idle or conn.closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def evict(self, now: float) -> None:
        """Close connections idle for longer than the timeout (before the upstream does)."""
        keep = []
        for c in self.idle:
            if c.closed:
                continue
            if now - c.idle_since > self.idle_timeout:
                c.close()
            else:
                keep.append(c)
        self.idle = keep

    def close(self) -> None:
        for c in self.idle:
            c.close()
        self.idle.clear()


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to a target, carrying one request at a time."""

    def __init__(
        self, pool: Pool, on_open: Callable[[UpstreamConnection], None] | None = None
    ) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.owner: UpstreamOwner | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False  # has carried a response before: may be stale
        self.idle_since = 0.0
        self.no_body = False  # response to HEAD: headers end the message
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: bytes | None = None
        self.chunked = False
        self.conn_close = False
        self.expose: bytes | None = None
        self.upgrade_value: bytes | None = None
        self.extra_hop: frozenset[bytes] = frozenset()
        self.keep_alive = False
        self.got_response = False  # any byte of the current response arrived
        self._interim = False
        self._done = False
        self._upgraded = False
        self._on_open = on_open

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self._on_open is not None:
            self._on_open(self)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if self._upgraded:
            if owner is not None:
                owner.upstream_body(data)
            return
        if owner is None:
            # An idle connection must say nothing; bytes here mean it is out of sync.
            self.close()
            return
        self.got_response = True
        corked = owner.cork()
        try:
            self.parser.feed_data(data)
            if self._done:
                self._done = False
                self._message_done()
        except httptools.HttpParserUpgrade as exc:
            if self.status == 101:
                self._upgraded = True
                owner.upstream_upgraded(data[exc.args[0] :])
            else:
                self._fail("bad_response")
        except httptools.HttpParserError:
            self._fail("bad_response")
        finally:
            if corked:
                owner.uncork()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        owner = self.owner
        self.owner = None
        if owner is None:
            return
        if self._upgraded:
            owner.upstream_complete()
        elif self.status and self.content_length is None and not self.chunked and not self.no_body:
            # A response delimited by the close of the connection (RFC 9112 §6.3 rule 8).
            owner.upstream_complete()
        else:
            owner.upstream_failed("reset", not self.got_response)

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_resume_writing()

    # --- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in DROP_DOWNSTREAM:
            if lname == b"content-length":
                self.content_length = value
            elif lname == b"transfer-encoding":
                self.chunked = True
            elif lname == b"connection":
                tokens = (
                    _KEEP_ALIVE if value.lower() == b"keep-alive" else connection_tokens((value,))
                )
                if b"close" in tokens:
                    self.conn_close = True
                self.extra_hop = self.extra_hop | (tokens - {b"close", b"keep-alive", b"upgrade"})
            elif lname == b"upgrade":
                self.upgrade_value = value
            return
        if lname == b"access-control-expose-headers":
            self.expose = value if self.expose is None else self.expose + b", " + value
            return
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # Interim responses (100 Continue, 103 Early Hints) are not relayed: the gateway
            # answers Expect itself and never sends Expect upstream.
            self._interim = True
            self._reset_head()
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        if status == 101:
            return  # the parser raises HttpParserUpgrade right after this
        if self.owner is not None:
            self.owner.upstream_headers(self)
        if self.no_body or status in (204, 304):
            self._done = True

    def on_body(self, body: bytes) -> None:
        if self.owner is not None and not self._done:
            self.owner.upstream_body(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._done = True

    # --- use ------------------------------------------------------------------------------

    def send(self, owner: UpstreamOwner, head: bytes, no_body: bool) -> None:
        """Start a request: `owner` gets the response events."""
        self.owner = owner
        self.no_body = no_body
        self.got_response = False
        if self.transport is not None:
            self.transport.write(head)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _reset_head(self) -> None:
        self.status = 0
        self.headers = []
        self.content_length = None
        self.chunked = False
        self.conn_close = False
        self.expose = None
        self.upgrade_value = None
        self.extra_hop = frozenset()

    def _message_done(self) -> None:
        owner = self.owner
        reusable = self.keep_alive and not self.conn_close and not self.closed
        if self.no_body or self.status in (204, 304):
            # llhttp may still wait for a body the headers announced; start afresh.
            self.parser = httptools.HttpResponseParser(self)
            reusable = reusable and not self.conn_close
        self.owner = None
        self._reset_head()
        self.reused = True
        if owner is not None:
            owner.upstream_complete()
        if reusable:
            self.pool.put(self)
        else:
            self.close()

    def release_failed(self) -> None:
        """The owner gives up on this connection mid-request: it cannot be reused."""
        self.owner = None
        self.close()

    def _fail(self, kind: str) -> None:
        owner = self.owner
        self.owner = None
        self.close()
        if owner is not None:
            owner.upstream_failed(kind, False)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

"""Answers a few GET/HEAD requests in the console's HTTP protocol, before any ASGI machinery.

uvicorn runs each request as an asyncio task through the ASGI app, its middleware and
routing, and writes the head and the body of the response separately: for a document that
is already in memory as bytes (the public status page), that machinery costs several times
the answer itself. `FastPathProtocol` is uvicorn's own httptools protocol with one change:
when a request's head is complete, `FastPath.answer` (a plain function of the method, the
path, the client's address and If-None-Match) is asked first; an `Answer` is written whole
in one write, straight from the parser's callback; None lets uvicorn run the request as
always. The answer function is the one the ASGI layer in front of the app uses too
(`hypercare.status.views.PublicStatus`), so both paths give the same bytes and headers.

The fast path steps aside (uvicorn's path serves the request) when a response is still
being written on the connection (pipelined requests stay in order), when the client is not
reading (the transport's buffer is full: uvicorn waits for it to drain), for a percent-
encoded or non-ASCII path, and for an upgrade. The client's address follows uvicorn's rules
for X-Forwarded-For from `web.trusted_proxies`, as its proxy-headers layer would.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.middleware.proxy_headers import _TrustedHosts
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("hypercare")

# what uvicorn refuses in a header value (it would answer 500 instead)
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
_CACHED = 256  # encoded answers kept (each answer object is long-lived: see `FastPath`)


@dataclass(frozen=True, slots=True, eq=False)
class Answer:
    """A whole response: status, headers (content-length included) and body (empty for
    HEAD and 304). Compared by identity: an answer function returns the same object for
    the same response, which lets its encoding be cached."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


# method, path (decoded, no query), client address, If-None-Match (raw) -> answer or None
Responder = Callable[[str, str, str, bytes | None], Answer | None]


class FastPath:
    """The answer function and what the protocol needs around it, shared by every
    connection: the trusted proxies and the encoded answers."""

    def __init__(self, answer: Responder, trusted_proxies: Sequence[str] = ()) -> None:
        self.answer = answer
        self.trusted = _TrustedHosts(list(trusted_proxies)) if trusted_proxies else None
        self._encoded: dict[int, tuple[Answer, bytes | None]] = {}
        self._defaults: tuple[list[tuple[bytes, bytes]], bytes] | None = None

    def encoded(self, answer: Answer) -> bytes | None:
        """The answer after its status line and uvicorn's default headers: its headers, the
        blank line and the body. None when a header would not be valid on the wire."""
        found = self._encoded.get(id(answer))
        if found is not None and found[0] is answer:
            return found[1]
        if len(self._encoded) >= _CACHED:
            self._encoded.clear()
        parts = []
        data: bytes | None = None
        for name, value in answer.headers:
            if _BAD_VALUE.search(value):
                break
            parts.append(b"%s: %s\r\n" % (name, value))
        else:
            parts.append(b"\r\n")
            parts.append(answer.body)
            data = b"".join(parts)
        self._encoded[id(answer)] = (answer, data)
        return data

    def defaults(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """uvicorn's default headers (the date, renewed each second as a new list), encoded
        once per list."""
        cached = self._defaults
        if cached is not None and cached[0] is headers:
            return cached[1]
        data = b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers)
        self._defaults = (headers, data)
        return data


class FastPathProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, asking `fastpath` first (see the module)."""

    fastpath: ClassVar[FastPath]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast: Answer | None = None
        self.fast_keep_alive = True

    def on_headers_complete(self) -> None:
        self.fast = None
        try:
            self.fast = self._fast_answer()
        except Exception:  # never worse than without the fast path
            log.exception("the console's fast path failed; the app answers instead")
        if self.fast is None:
            super().on_headers_complete()

    def _fast_answer(self) -> Answer | None:
        parser = self.parser
        method = parser.get_method()
        if method != b"GET" and method != b"HEAD":
            return None
        cycle = self.cycle
        if (cycle is not None and not cycle.response_complete) or self.pipeline:
            return None  # answers go out in request order
        if self.flow.write_paused or parser.should_upgrade():
            return None
        raw = httptools.parse_url(self.url).path
        if b"%" in raw or not raw.isascii():
            return None
        fastpath = self.fastpath
        client = self.client[0] if self.client else "-"
        if_none_match: bytes | None = None
        forwarded: list[bytes] = []
        for name, value in self.headers:
            if name == b"if-none-match":
                if if_none_match is None:
                    if_none_match = value
            elif name == b"x-forwarded-for":
                forwarded.append(value)
        trusted = fastpath.trusted
        if forwarded and trusted is not None and client in trusted:
            host, _ = trusted.get_trusted_client_address(b", ".join(forwarded).decode("latin1"))
            if host:
                client = host
        answer = fastpath.answer(method.decode(), raw.decode(), client, if_none_match)
        if answer is None or fastpath.encoded(answer) is None:
            return None
        self.fast_keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        return answer

    def on_body(self, body: bytes) -> None:
        if self.fast is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        answer = self.fast
        if answer is None:
            super().on_message_complete()
            return
        self.fast = None
        fastpath = self.fastpath
        rest = fastpath.encoded(answer)
        if rest is None:  # pragma: no cover - checked when the head was complete
            rest = b"\r\n"
        defaults = fastpath.defaults(self.server_state.default_headers)
        if self.fast_keep_alive:
            self.transport.write(b"".join((STATUS_LINE[answer.status], defaults, rest)))
        else:
            close = b"connection: close\r\n"
            self.transport.write(b"".join((STATUS_LINE[answer.status], defaults, close, rest)))
        self.server_state.total_requests += 1
        if not self.fast_keep_alive:
            self.transport.close()
            return
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )


def protocol(fastpath: FastPath) -> type[FastPathProtocol]:
    """The protocol class to give uvicorn (`uvicorn.Config(http=...)`) for `fastpath`."""
    return type("FastPathProtocol", (FastPathProtocol,), {"fastpath": fastpath})

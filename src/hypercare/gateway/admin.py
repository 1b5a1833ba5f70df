"""The worker's admin listener: ``/metrics`` (Prometheus), ``/healthz`` and ``/targets`` (JSON).

Deliberately tiny: one request per connection, answered and closed. It is for scrapers and
humans on loopback, not for traffic.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import httptools

if TYPE_CHECKING:
    from hypercare.gateway.runtime import Gateway


class AdminConnection(asyncio.Protocol):
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        try:
            if self.size > 16384:
                raise httptools.HttpParserError("too large")
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, b"text/plain", b"bad request\n")

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0]
        if path == b"/metrics":
            self._send(200, b"text/plain; version=0.0.4", self.gw.render_metrics())
        elif path == b"/healthz":
            self._send(200, b"application/json", b'{"status":"ok"}')
        elif path == b"/targets":
            self._send(200, b"application/json", self.gw.targets_json())
        else:
            self._send(
                404,
                b"application/json",
                b'{"error":{"code":"not_found","message":"no such admin path"}}',
            )

    def _send(self, status: int, ctype: bytes, body: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s"
            % (status, b"OK" if status == 200 else b"Error", ctype, len(body), body)
        )
        t.close()

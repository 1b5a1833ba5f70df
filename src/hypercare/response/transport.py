"""The outbound client's transport: HTTP/1.1 with keep-alive over asyncio streams.

httpx's default transport (httpcore) spends about 2-3 ms of CPU per request in its pool
bookkeeping (every request scans every connection and polls each socket), which caps the
notification dispatcher far below 1,000 deliveries/s. Notifications are small POSTs with
small answers, so this transport keeps exactly what they need:

- one idle-connection stack per origin, reused (keep-alive) and closed after `keepalive`
  seconds idle; at most `max_connections` open at a time (the rest wait, bounded by the
  pool timeout);
- the request written in one write (head and body together);
- the answer read with Content-Length, chunked or read-until-close framing; a body over
  `max_body` bytes is cut and its connection closed (only the status matters here);
- TLS with the default context (certificates and host names checked) for https;
- httpx's timeouts (connect, write, read, pool) and exception classes, so callers and the
  `httpx.Client` features above the transport (no redirects, headers) work as before.

A request that fails on a reused connection before any answer byte arrived (the receiver
closed it while idle) is sent once more on a fresh connection.

A request whose `PIN_EXTENSION` extension lists addresses connects only to those (in
order, the first that answers), never resolving the host again: the URL guard checked
exactly them (`hypercare.response.channels.pin_public`). TLS still checks the certificate
against the URL's host name, and pinned connections are pooled apart from the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

MAX_HEAD = 64 * 1024
PIN_EXTENSION = "hypercare.addresses"
# (scheme, host, port, the pinned addresses joined, or "")
Origin = tuple[str, str, int, str]


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    reused: bool = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Stale(Exception):
    """A reused connection was found closed before the answer started."""


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    found = request.extensions.get("timeout") or {}
    return {k: found.get(k) for k in ("connect", "read", "write", "pool")}


class PooledTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive: float = 5.0,
        max_body: int = 256 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.keepalive = keepalive
        self.max_body = max_body
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Conn]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False

    # --- connections ---------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _take_idle(self, origin: Origin) -> _Conn | None:
        stack = self._idle.get(origin)
        now = time.monotonic()
        while stack:
            conn = stack.pop()
            if now - conn.idle_since < self.keepalive and not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        return None

    async def _connect(
        self, request: httpx.Request, origin: Origin, timeout: float | None
    ) -> _Conn:
        scheme, host, port, pinned = origin
        error: Exception | None = None
        try:
            async with asyncio.timeout(timeout):
                for address in pinned.split(",") if pinned else [host]:
                    try:
                        if scheme == "https":
                            reader, writer = await asyncio.open_connection(
                                address,
                                port,
                                ssl=self._context(),
                                server_hostname=host,
                                limit=MAX_HEAD,
                            )
                        else:
                            reader, writer = await asyncio.open_connection(
                                address, port, limit=MAX_HEAD
                            )
                    except (OSError, ssl.SSLError) as exc:
                        error = exc
                        continue
                    return _Conn(reader, writer)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connect to {host}:{port} timed out", request=request
            ) from None
        raise httpx.ConnectError(f"{type(error).__name__}: {error}", request=request) from None

    def _release(self, origin: Origin, conn: _Conn, reusable: bool) -> None:
        if reusable and not self._closed:
            conn.idle_since = time.monotonic()
            conn.reused = False
            stack = self._idle.setdefault(origin, [])
            stack.append(conn)
        else:
            conn.close()

    # --- one exchange --------------------------------------------------------------------

    @staticmethod
    def _head(request: httpx.Request, body: bytes) -> bytes:
        url = request.url
        target = url.raw_path.decode("ascii")
        lines = [f"{request.method} {target} HTTP/1.1"]
        seen_length = False
        for name, value in request.headers.raw:
            lower = name.lower()
            if lower == b"content-length":
                seen_length = True
            if lower == b"transfer-encoding":
                continue  # the body is always sent whole, with its length
            lines.append(f"{name.decode('latin-1')}: {value.decode('latin-1')}")
        if not seen_length and (body or request.method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _read_answer(
        self, conn: _Conn, request: httpx.Request
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        """(status, headers, body, reusable)."""
        reader = conn.reader
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if conn.reused and not exc.partial:
                raise _Stale from None
            raise httpx.RemoteProtocolError(
                "the receiver closed the connection without an answer", request=request
            ) from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError("answer head too large", request=request) from None
        lines = head[:-4].split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise httpx.RemoteProtocolError("not an HTTP/1.x answer", request=request)
        try:
            status = int(status_line[1])
        except ValueError:
            raise httpx.RemoteProtocolError("bad status line", request=request) from None
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        close = status_line[0] == b"HTTP/1.0"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            name, value = name.strip(), value.strip()
            headers.append((name, value))
            lower = name.lower()
            if lower == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise httpx.RemoteProtocolError("bad Content-Length", request=request) from None
            elif lower == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lower == b"connection":
                close = close or b"close" in value.lower()
                if b"keep-alive" in value.lower():
                    close = False
        if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, headers, b"", not close
        if chunked:
            body, complete = await self._read_chunked(reader)
            return status, headers, body, complete and not close
        if length is not None:
            if length > self.max_body:
                return status, headers, await reader.read(self.max_body), False
            return status, headers, await reader.readexactly(length), not close
        # no framing: the body runs until the receiver closes
        return status, headers, await reader.read(self.max_body), False

    async def _read_chunked(self, reader: asyncio.StreamReader) -> tuple[bytes, bool]:
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                return bytes(body), False
            if size == 0:
                # trailers, then the blank line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(body), True
            if len(body) + size > self.max_body:
                return bytes(body), False
            body += await reader.readexactly(size)
            await reader.readexactly(2)

    async def _exchange(
        self,
        request: httpx.Request,
        conn: _Conn,
        data: bytes,
        t: dict[str, float | None],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        try:
            conn.writer.write(data)
            async with asyncio.timeout(t["write"]):
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("write timed out", request=request) from None
        except OSError as exc:
            if conn.reused:
                raise _Stale from None
            raise httpx.WriteError(f"{type(exc).__name__}: {exc}", request=request) from None
        try:
            async with asyncio.timeout(t["read"]):
                return await self._read_answer(conn, request)
        except TimeoutError:
            raise httpx.ReadTimeout("read timed out", request=request) from None
        except asyncio.IncompleteReadError:
            raise httpx.RemoteProtocolError("the answer was cut short", request=request) from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError("answer line too long", request=request) from None
        except OSError as exc:
            if conn.reused:
                raise _Stale from None
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}", request=request)
        pinned = ",".join(str(a) for a in request.extensions.get(PIN_EXTENSION) or ())
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80), pinned)
        t = _timeouts(request)
        body = await request.aread()
        data = self._head(request, body) + body
        try:
            async with asyncio.timeout(t["pool"]):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None
        try:
            for attempt in (0, 1):
                conn = self._take_idle(origin) if attempt == 0 else None
                if conn is None:
                    conn = await self._connect(request, origin, t["connect"])
                try:
                    status, headers, content, reusable = await self._exchange(
                        request, conn, data, t
                    )
                except _Stale:
                    conn.close()
                    continue
                except BaseException:
                    conn.close()
                    raise
                self._release(origin, conn, reusable)
                return httpx.Response(
                    status,
                    headers=headers,
                    content=content,
                    request=request,
                    extensions={"http_version": b"HTTP/1.1"},
                )
            raise httpx.RemoteProtocolError(  # pragma: no cover - attempt 1 is never stale
                "the connection closed before the answer", request=request
            )
        finally:
            self._slots.release()

    def idle_connections(self) -> int:
        return sum(len(s) for s in self._idle.values())

    async def aclose(self) -> None:
        self._closed = True
        conns: Iterable[_Conn] = [c for s in self._idle.values() for c in s]
        self._idle.clear()
        for conn in conns:
            conn.close()

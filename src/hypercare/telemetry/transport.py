"""How the shipper reaches the console: one POST of one batch, nothing more.

The shipper needs a single operation — send these bytes, tell me the status and the answer —
so it talks to a `Transport` (one method) and `HttpTransport` is the real one: a minimal
HTTP/1.1 client on the caller's running loop (asyncio or uvloop) that keeps one connection
alive between batches. It replaces httpx here because httpx spent ~2.6-3.9 ms of the gateway
worker's CPU per 100 KB batch against ~0.25-0.3 ms for this client (docs/performance.md,
"Telemetry shipping end to end"): the worker ships four batches a second, on the same loop
that serves requests.

What it does, and only that: ``http://`` and ``https://`` (TLS from `ssl.create_default_context`),
``Content-Length`` request bodies, responses framed by ``Content-Length``, chunked encoding or
the end of the connection, a deadline on the whole exchange (connect, send, answer). Anything
that goes wrong on the way raises `ConsoleUnreachable` and drops the connection, so a
half-read answer never poisons the next batch. A request that fails on a reused connection
before any answer arrived is tried once more on a fresh one: the console may have closed the
idle connection, and re-sending a batch is safe (its key makes ingest idempotent).

    transport = HttpTransport("http://127.0.0.1:8700", "/api/v1/internal/telemetry",
                              headers={"Authorization": "Bearer hcn_..."}, timeout=5.0)
    reply = await transport.post(body)   # Reply(status=200, body=b'{"accepted": 750, ...}')
    await transport.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

# an answer's head and body are small JSON documents; anything larger is not our console
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024


class ConsoleUnreachable(Exception):
    """The exchange did not complete: connection refused or reset, timeout, or an answer that
    is not HTTP/1.x. Whether the console received the batch is unknown."""


class Reply(NamedTuple):
    status: int
    body: bytes


class Transport(Protocol):
    """Sends one batch and returns the console's answer; raises `ConsoleUnreachable`."""

    async def post(self, body: bytes) -> Reply: ...

    async def close(self) -> None: ...


class HttpTransport:
    def __init__(
        self,
        base_url: str,
        path: str,
        *,
        headers: dict[str, str],
        timeout: float = 5.0,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"the console URL must be http://HOST[:PORT] (got {base_url!r})")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.timeout = timeout
        self._tls = ssl.create_default_context() if url.scheme == "https" else None
        target = url.path.rstrip("/") + path
        fields = {"Host": url.netloc, **headers, "Content-Type": "application/json"}
        self._head = (
            f"POST {target} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
            + "Content-Length: "
        ).encode("latin-1")
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes) -> Reply:
        try:
            async with asyncio.timeout(self.timeout):
                reused = self._conn is not None and not self._conn[0].at_eof()
                try:
                    return await self._exchange(body)
                except _Stale:
                    if not reused:
                        raise
                    return await self._exchange(body)
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError, TimeoutError) as exc:
            self._drop()
            raise ConsoleUnreachable(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            self._drop()  # cancelled mid-exchange: the connection is in an unknown state
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()
            with contextlib.suppress(OSError):
                await conn[1].wait_closed()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()

    async def _exchange(self, body: bytes) -> Reply:
        if self._conn is None or self._conn[0].at_eof():
            self._drop()
            self._conn = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self._tls,
                limit=MAX_HEAD_BYTES,
                server_hostname=self.host if self._tls else None,
            )
        reader, writer = self._conn
        writer.write(self._head + b"%d\r\n\r\n" % len(body))
        writer.write(body)
        try:
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self._drop()
            # nothing of an answer arrived: on a reused connection, the console may simply
            # have closed it while idle
            raise _Stale(str(exc)) from exc
        status, length, chunked, keep = _parse_head(head)
        if status < 200 or status in (204, 304):
            data = b""  # no body (RFC 9112 section 6.3); 1xx is not expected: no Expect sent
        elif chunked:
            data = await _read_chunked(reader)
        elif length is not None:
            if length > MAX_BODY_BYTES:
                raise ValueError(f"answer body of {length} bytes")
            data = await reader.readexactly(length)
        else:  # the body ends with the connection
            data = b""
            while not reader.at_eof():
                data += await reader.read(MAX_BODY_BYTES)
                if len(data) > MAX_BODY_BYTES:
                    raise ValueError(f"answer body over {MAX_BODY_BYTES} bytes")
            keep = False
        if not keep:
            self._drop()
        return Reply(status, data)


class _Stale(ConnectionError):
    pass


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """(status, content length or None, chunked, keep-alive) of an HTTP/1.x answer head."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    length: int | None = None
    chunked = False
    keep = version != "HTTP/1.0"
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            if not value.isdigit():
                raise ValueError(f"bad Content-Length {value!r}")
            length = int(value)
        elif name == "transfer-encoding":
            chunked = value.endswith("chunked")
        elif name == "connection":
            keep = "close" not in value if keep else "keep-alive" in value
    return int(code), length, chunked, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        n = int(line.split(b";", 1)[0].strip() or b"x", 16)  # ValueError when not hex
        if n == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        size += n
        if size > MAX_BODY_BYTES:
            raise ValueError(f"chunked answer over {MAX_BODY_BYTES} bytes")
        parts.append(await reader.readexactly(n))
        await reader.readexactly(2)

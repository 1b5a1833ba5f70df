"""A minimal HTTP/1.1 server and keep-alive client on asyncio streams, for the demo only.

The demo shop and its traffic are deliberately small and dependency-free: they stand in for
the services a team puts behind the gateway. Nothing here is on the gateway's hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


def json_response(status: int, data: object, **headers: str) -> Response:
    return Response(
        status, json.dumps(data).encode(), {"content-type": "application/json", **headers}
    )


Handler = Callable[[Request], Awaitable[Response]]

_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        return None
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return Request(method, path, query, headers, body)


def _encode(resp: Response, head_only: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Status')}"]
    headers = {"content-length": str(len(resp.body)), **resp.headers}
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else resp.body)


async def serve(handler: Handler, host: str, port: int) -> asyncio.Server:
    """Serve `handler` with keep-alive on host:port (0 picks a free port)."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                try:
                    response = await handler(request)
                except Exception as exc:  # the demo shop answers 500 like a real service
                    response = json_response(500, {"error": type(exc).__name__})
                writer.write(_encode(response, request.method == "HEAD"))
                await writer.drain()
                if request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # shutting down: end quietly (asyncio logs a cancelled connection task as an
            # "Exception in callback" with a traceback)
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(connection, host, port)


class Client:
    """One keep-alive connection to host:port; reconnects when the server closes it."""

    def __init__(
        self, host: str, port: int, timeout: float = 10.0, *, keep_alive: bool = True
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.keep_alive = keep_alive
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        json_body: object = None,
    ) -> Response:
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers = {"content-type": "application/json", **(headers or {})}
        try:
            return await asyncio.wait_for(
                self._exchange(method, path, headers or {}, body or b""), self.timeout
            )
        except BaseException:
            await self.close()
            raise

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Response:
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._conn
        head = [
            f"{method} {path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            f"content-length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if not self.keep_alive:
            head.append("connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status_head = await reader.readuntil(b"\r\n\r\n")
        lines = status_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        resp_headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                resp_headers[k.strip().lower()] = v.strip()
        if resp_headers.get("transfer-encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data += await reader.readexactly(size)
                await reader.readexactly(2)
            payload = bytes(data)
        elif method == "HEAD" or status in (204, 304):
            payload = b""
        else:
            payload = await reader.readexactly(int(resp_headers.get("content-length", "0")))
        if not self.keep_alive or resp_headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, payload, resp_headers)

    async def close(self) -> None:
        if self._conn is not None:
            _, writer = self._conn
            self._conn = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

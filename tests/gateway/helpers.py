"""Test harness: a gateway and scriptable upstream servers, each on its own loop thread."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvloop

from hypercare.config import parse_config
from hypercare.gateway.capture import Capturer
from hypercare.gateway.records import CallRecord
from hypercare.gateway.runtime import Gateway
from hypercare.telemetry.capture import CallCapture
from tests.support import wait_until

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def wait_for(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """`tests.support.wait_until` with this package's defaults: every exception propagates."""
    wait_until(cond, timeout, what, interval=0.01, ignore=())


class LoopThread:
    """An event loop (uvloop) running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def wrap() -> Any:
            return fn()

        return self.run(wrap())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class ListSink:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self.captures: dict[str, CallCapture] = {}  # by request id

    def emit(self, record: CallRecord, capture: CallCapture | None = None) -> None:
        self.records.append(record)
        if capture is not None:
            self.captures[record.request_id] = capture


class GatewayUnderTest:
    def __init__(self, yaml_text: str) -> None:
        full = parse_config(yaml_text)
        self.config = full.gateway
        self.sink = ListSink()
        self.lt = LoopThread()
        self.gw = Gateway(self.config, self.sink, Capturer.from_config(full.telemetry))
        self.lt.run(self.gw.start("127.0.0.1", 0, admin=("127.0.0.1", 0)))
        self.port = self.gw.addresses[0][1]
        assert self.gw.admin_address is not None
        self.admin_port = self.gw.admin_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def records(self) -> list[CallRecord]:
        return self.sink.records

    def open_connections(self) -> int:
        return int(self.lt.call(lambda: len(self.gw.connections)))

    def stop(self) -> None:
        try:
            self.lt.run(self.gw.close())
        finally:
            self.lt.stop()


# --- a scriptable upstream -------------------------------------------------------------------


class Upstream:
    """An HTTP/1.1 server with behaviours picked by path; keep-alive; counts requests."""

    def __init__(self, name: str = "up") -> None:
        self.name = name
        self.lt = LoopThread()
        self.healthy = True
        self.issued_token = "upstream-issued-token"
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.open = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.server = self.lt.run(self._start())
        self.port: int = self.server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.writers.add(writer)
        served = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for ln in lines[1:]:
                    if ln:
                        k, _, v = ln.partition(":")
                        headers[k.strip().lower()] = v.strip()
                path, _, query = target.partition("?")
                params = dict(p.partition("=")[::2] for p in query.split("&") if p)
                body_len = 0
                body = b""
                served += 1
                if path == "/stale" and served > 1:
                    return  # a keep-alive connection closed just as a request arrives
                if path == "/noread":  # neither read the request body nor answer
                    await asyncio.sleep(float(params.get("s", "5")))
                    return
                if path == "/early":  # answer without reading the request body
                    writer.write(b"HTTP/1.1 413 X\r\ncontent-length: 2\r\n\r\nno")
                    await writer.drain()
                    continue
                if "content-length" in headers:
                    n = int(headers["content-length"])
                    while n:
                        chunk = await reader.read(min(n, 1 << 20))
                        if not chunk:
                            return
                        body_len += len(chunk)
                        if len(body) < 65536:
                            body += chunk[:65536]
                        n -= len(chunk)
                elif headers.get("transfer-encoding") == "chunked":
                    while True:
                        size = int((await reader.readline()).split(b";")[0], 16)
                        if size == 0:
                            await reader.readline()
                            break
                        left = size
                        while left:
                            chunk = await reader.read(min(left, 1 << 20))
                            if not chunk:
                                return
                            body_len += len(chunk)
                            if len(body) < 65536:
                                body += chunk
                            left -= len(chunk)
                        await reader.readline()
                info = {
                    "method": method,
                    "target": target,
                    "path": path,
                    "headers": headers,
                    "body_len": body_len,
                    "upstream": self.name,
                }
                self.requests.append(info)
                if not await self._respond(
                    writer, reader, method, path, params, headers, body, info
                ):
                    return
                if headers.get("connection", "").lower() == "close":
                    return
        finally:
            self.open -= 1
            self.writers.discard(writer)
            writer.close()

    async def _respond(
        self,
        w: asyncio.StreamWriter,
        r: asyncio.StreamReader,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        info: dict[str, Any],
    ) -> bool:
        def send(status: int, payload: bytes, extra: str = "") -> None:
            w.write(
                f"HTTP/1.1 {status} X\r\ncontent-length: {len(payload)}\r\n{extra}\r\n".encode()
                + (b"" if method == "HEAD" else payload)
            )

        if path == "/healthz":
            send(200 if self.healthy else 503, b"ok")
        elif path == "/login":  # a JSON answer holding a secret of the upstream's own
            send(
                200,
                json.dumps({"user": "ann", "access_token": self.issued_token}).encode(),
                "content-type: application/json\r\n",
            )
        elif path.startswith("/status/"):
            send(int(path.rsplit("/", 1)[1]), b"", "")
        elif path == "/nocontent":
            w.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif path == "/notmodified":
            w.write(b"HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n")
        elif path == "/big":
            n = int(params.get("n", "0"))
            block = b"x" * 65536
            if params.get("chunked"):
                w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                left = n
                while left:
                    k = min(left, len(block))
                    w.write(b"%x\r\n%s\r\n" % (k, block[:k]))
                    left -= k
                    await w.drain()
                w.write(b"0\r\n\r\n")
            else:
                w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % n)
                left = n
                while left:
                    k = min(left, len(block))
                    w.write(block[:k])
                    left -= k
                    await w.drain()
        elif path == "/slow":
            await asyncio.sleep(float(params.get("s", "1")))
            send(200, b"slow")
        elif path == "/stall-body":
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
            await w.drain()
            await asyncio.sleep(float(params.get("s", "5")))
            return False
        elif path == "/reset":
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 1000)
            await w.drain()
            sock = w.get_extra_info("socket")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            return False
        elif path == "/garbage":
            w.write(b"this is not http\r\n\r\n")
            await w.drain()
            return False
        elif path == "/close-delimited":
            w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-close")
            await w.drain()
            return False
        elif path in ("/ws", "/switch"):
            # /ws: a WebSocket server (?accept=bad: with a wrong Sec-WebSocket-Accept);
            # /switch: a careless one that switches to whatever was asked, or websocket.
            key = headers.get("sec-websocket-key", "").encode()
            accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
            if params.get("accept") == "bad":
                accept = b"x" + accept[1:]
            upgrade = headers.get("upgrade", "websocket") if path == "/switch" else "websocket"
            w.write(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: %s\r\nconnection: upgrade\r\n"
                b"sec-websocket-accept: %s\r\n\r\n" % (upgrade.encode(), accept)
            )
            await w.drain()
            while True:
                data = await r.read(65536)
                if not data:
                    return False
                w.write(data)
                await w.drain()
        else:
            payload = json.dumps(info).encode()
            if not params.get("nobody"):
                info["body_head"] = body[:64].decode("latin-1")
                payload = json.dumps(info).encode()
            send(200, payload, "content-type: application/json\r\nconnection: keep-alive\r\n")
        await w.drain()
        return True

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            for w in list(self.writers):
                w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.lt.run(close())
        finally:
            self.lt.stop()


def raw_request(port: int, data: bytes, timeout: float = 5.0, read_all: bool = True) -> bytes:
    """Send raw bytes and read until the server closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
            if not read_all:
                break
        return out


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))

"""The public status documents answered in the console's HTTP protocol (`api.fastpath`),
over a real socket: the same bytes and headers as the app's own layer, answers in request
order when requests are pipelined, Connection: close and HTTP/1.0, bodies skipped, and the
rate limit counting the client uvicorn would (X-Forwarded-For only from trusted proxies).
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.api.app import build_state, create_app
from hypercare.api.fastpath import Answer, Responder
from hypercare.api.state import AppState
from hypercare.config import parse_config
from hypercare.server import _Server, bind_console, console_config
from hypercare.status import jobs
from hypercare.status.views import PublicDocs
from tests.support import wait_until_async

WAIT = 60.0

CONFIG = """
status:
  page: {name: Shop status, logo: "https://cdn.example.com/logo.png"}
  components:
    - {name: Payments, routes: [payment-status]}
    - {name: Catalog, group: Shop, routes: [catalog-search]}
"""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def without_date(self) -> tuple[int, list[tuple[str, str]], bytes]:
        return self.status, [h for h in self.headers if h[0] != "date"], self.body


class Conn:
    """One raw HTTP/1.1 connection: requests written as given, responses read in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def read(self, head: bool = False) -> Response:
        lines = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)).split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = [
            (k.decode().lower(), v.decode().strip())
            for k, _, v in (line.partition(b":") for line in lines[1:] if line)
        ]
        length = int(dict(headers).get("content-length", "0"))
        body = b"" if head else await asyncio.wait_for(self.reader.readexactly(length), WAIT)
        return Response(status, headers, body)

    async def get(self, path: str, *extra: str, method: str = "GET") -> Response:
        lines = [f"{method} {path} HTTP/1.1", "Host: console", *extra, "", ""]
        await self.send("\r\n".join(lines).encode())
        return await self.read(head=method == "HEAD")

    async def at_eof(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), WAIT) == b""

    def close(self) -> None:
        self.writer.close()


class Counting:
    """The fast path's answer function, counting the requests it was asked about."""

    def __init__(self, answer: Responder) -> None:
        self.answer = answer
        self.asked = 0

    def __call__(self, method: str, path: str, client: str, inm: bytes | None) -> Answer | None:
        self.asked += 1
        return self.answer(method, path, client, inm)


@asynccontextmanager
async def serving(state: AppState) -> AsyncIterator[tuple[Callable[[], Awaitable[Conn]], Counting]]:
    """The console app behind uvicorn with the fast path, as `hypercare up` runs it."""
    fast = Counting(PublicDocs(state).answer)
    sock = bind_console("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = console_config(
        create_app(state, background=False),
        "127.0.0.1",
        port,
        state.config.web.trusted_proxies,
        fast,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until_async(lambda: server.started, WAIT, "the console serves")

        async def connect() -> Conn:
            return Conn(*await asyncio.open_connection("127.0.0.1", port))

        yield connect, fast
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT)
        sock.close()


def through_the_app(path: str) -> str:
    """The same document by a percent-encoded path: the fast path leaves it to the app."""
    return f"/%{ord(path[1]):02X}{path[2:]}"


def _state(engine: AsyncEngine, extra: str = "") -> AppState:
    return build_state(parse_config(CONFIG + extra, "test.yaml"), engine)


async def test_the_fast_path_answers_as_the_app_does(engine: AsyncEngine) -> None:
    state = _state(engine)
    paths = sorted(jobs.runtime(state).served)
    assert "/api/v2/summary.json" in paths and "/status" in paths
    async with serving(state) as (connect, fast):
        conn = await connect()
        asked = 0
        for path in paths:
            for method in ("GET", "HEAD"):
                quick = await conn.get(path, method=method)
                slow = await conn.get(through_the_app(path), method=method)
                assert quick.without_date() == slow.without_date(), (method, path)
                assert quick.status == 200 and quick.header("date")
                assert int(quick.header("content-length") or 0) > 0
                assert (quick.body == b"") == (method == "HEAD")
                asked += 1
            etag = quick.header("etag") or ""
            quick = await conn.get(path, f"If-None-Match: W/{etag}")
            slow = await conn.get(through_the_app(path), f"If-None-Match: {etag}, x")
            assert quick.status == 304 and quick.without_date() == slow.without_date(), path
            asked += 1
        page = await conn.get("/status")
        csp = page.header("content-security-policy") or ""
        assert "img-src 'self' data: https://cdn.example.com" in csp
        assert page.header("x-frame-options") == "DENY"
        assert page.header("cache-control") == "public, max-age=5, must-revalidate"
        assert page.header("x-content-type-options") == "nosniff"
        # other methods and other paths are the app's
        post = await conn.get("/api/v2/summary.json", "Content-Length: 0", method="POST")
        assert post.status == 405 and post.header("allow") == "GET, HEAD"
        assert (await conn.get("/healthz")).status == 200
        assert (await conn.get("/api/v2/nothing.json")).status == 404
        assert fast.asked == asked + 1 + 2  # the page; /healthz and nothing.json asked, None
        conn.close()


async def test_pipelined_requests_are_answered_in_order(engine: AsyncEngine) -> None:
    state = _state(engine)
    async with serving(state) as (connect, _):
        conn = await connect()
        paths = ["/healthz", "/api/v2/status.json", "/healthz", "/status", "/api/v2/summary.json"]
        await conn.send(b"".join(f"GET {p} HTTP/1.1\r\nHost: c\r\n\r\n".encode() for p in paths))
        got = [await conn.read() for _ in paths]
        assert [r.status for r in got] == [200] * 5
        assert b'"version"' in got[0].body and b'"version"' in got[2].body
        assert b'"status"' in got[1].body and b'"components"' not in got[1].body
        assert got[3].body.startswith(b"<!") and b'"components"' in got[4].body
        # a GET with a body: the body is read and skipped, the connection goes on
        await conn.send(
            b"GET /api/v2/status.json HTTP/1.1\r\nHost: c\r\nContent-Length: 5\r\n\r\nabcde"
        )
        assert (await conn.read()).status == 200
        assert (await conn.get("/api/v2/status.json")).status == 200
        conn.close()


async def test_connection_close_and_http_1_0(engine: AsyncEngine) -> None:
    state = _state(engine)
    async with serving(state) as (connect, fast):
        conn = await connect()
        r = await conn.get("/api/v2/status.json", "Connection: close")
        assert r.status == 200 and r.header("connection") == "close"
        assert await conn.at_eof()
        conn.close()
        old = await connect()
        await old.send(b"GET /status HTTP/1.0\r\n\r\n")
        r = await old.read()
        assert r.status == 200 and r.body.startswith(b"<!") and await old.at_eof()
        old.close()
        assert fast.asked == 2


async def test_rate_limit_counts_forwarded_clients_only_from_trusted_proxies(
    engine: AsyncEngine,
) -> None:
    limit = "  rate_limit: 2\n"
    trusted = _state(engine, limit + "web: {trusted_proxies: [127.0.0.1]}\n")
    async with serving(trusted) as (connect, _):
        conn = await connect()
        one = "X-Forwarded-For: 203.0.113.7"
        codes = [(await conn.get("/api/v2/status.json", one)).status for _ in range(3)]
        assert codes == [200, 200, 429]
        quick = await conn.get("/api/v2/status.json", one)
        slow = await conn.get(through_the_app("/api/v2/status.json"), one)
        assert quick.status == 429 and quick.without_date() == slow.without_date()
        assert int(quick.header("retry-after") or 0) >= 1
        other = await conn.get("/status", "X-Forwarded-For: 203.0.113.8")
        assert other.status == 200  # another client: its own bucket
        conn.close()
    untrusted = _state(engine, limit)
    async with serving(untrusted) as (connect, _):
        conn = await connect()
        codes = [
            (await conn.get("/api/v2/status.json", f"X-Forwarded-For: 203.0.113.{i}")).status
            for i in range(3)
        ]
        assert codes == [200, 200, 429]  # the header is not believed: one client, 127.0.0.1
        conn.close()

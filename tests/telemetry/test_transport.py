"""The shipper's HTTP client against tiny real servers on loopback: keep-alive, framing,
console down, slow console, and what the shipper does with each answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hypercare.telemetry.shipper import INGEST_PATH, Shipper
from hypercare.telemetry.transport import ConsoleUnreachable, HttpTransport, Reply
from tests.conftest import free_port
from tests.support import wait_until_async
from tests.telemetry.factory import record
from tests.telemetry.test_shipper import NODE_TOKEN

Answer = Callable[[int], Awaitable[bytes | None]]  # request number → raw answer, None: hang


class Console:
    """A loopback server that reads HTTP/1.1 POSTs and answers what `answer` says."""

    def __init__(self, answer: Answer, *, close_after_answer: bool = False) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.requests: list[tuple[bytes, dict[str, str], bytes]] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                line, *rest = head.decode("latin-1").split("\r\n")
                fields = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (h.partition(":") for h in rest if h)
                }
                body = await reader.readexactly(int(fields["content-length"]))
                self.requests.append((line.encode(), fields, body))
                out = await self.answer(len(self.requests))
                if out is None:
                    await asyncio.Event().wait()  # never answers
                    return
                writer.write(out)
                await writer.drain()
                if self.close_after_answer or b"connection: close" in out.lower():
                    return
        finally:
            self._writers.discard(writer)
            writer.close()


def answer(status: int, body: bytes = b'{"accepted": 1}', extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


Serve = Callable[..., Awaitable[Console]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[Console] = []

    async def start(how: Answer, port: int = 0, close_after_answer: bool = False) -> Console:
        c = Console(how, close_after_answer=close_after_answer)
        await c.start(port)
        started.append(c)
        return c

    yield start
    for c in started:
        await c.stop()


def transport(url: str, timeout: float = 5.0) -> HttpTransport:
    return HttpTransport(
        url, INGEST_PATH, headers={"Authorization": f"Bearer {NODE_TOKEN}"}, timeout=timeout
    )


async def test_posts_over_one_kept_alive_connection(serve: Serve) -> None:
    async def ok(n: int) -> bytes:
        return answer(200, b'{"accepted": %d}' % n)

    console = await serve(ok)
    t = transport(console.url + "/prefix/")
    try:
        assert await t.post(b'{"a": 1}') == Reply(200, b'{"accepted": 1}')
        assert await t.post(b"x" * 200_000) == Reply(200, b'{"accepted": 2}')
    finally:
        await t.close()
    assert console.connections == 1
    (line, fields, body), second = console.requests
    assert line == b"POST /prefix/api/v1/internal/telemetry HTTP/1.1"
    assert fields["authorization"] == f"Bearer {NODE_TOKEN}"
    assert fields["host"] == f"127.0.0.1:{console.port}"
    assert fields["content-type"] == "application/json"
    assert body == b'{"a": 1}' and second[2] == b"x" * 200_000


async def test_chunked_and_closing_answers(serve: Serve) -> None:
    async def odd(n: int) -> bytes:
        if n == 1:
            return (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"
            )
        return answer(503, b"busy", "connection: close\r\n")

    console = await serve(odd)
    t = transport(console.url)
    try:
        assert await t.post(b"{}") == Reply(200, b"hello world")
        assert await t.post(b"{}") == Reply(503, b"busy")
        assert await t.post(b"{}") == Reply(503, b"busy")  # a fresh connection after close
    finally:
        await t.close()
    assert console.connections == 2


async def test_answers_without_a_length(serve: Serve) -> None:
    async def odd(n: int) -> bytes:
        if n == 1:
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + b"y" * 100_000

    console = await serve(odd)
    t = transport(console.url)
    try:
        assert await t.post(b"{}") == Reply(204, b"")
        assert await t.post(b"{}") == Reply(200, b"y" * 100_000)  # read to the end
    finally:
        await t.close()
    assert console.connections == 1


async def test_a_connection_the_console_closed_while_idle_is_replaced(serve: Serve) -> None:
    async def ok(n: int) -> bytes:
        return answer(200, extra="connection: keep-alive\r\n")

    # answers, then closes the connection it promised to keep (an idle timeout)
    console = await serve(ok, close_after_answer=True)
    t = transport(console.url)
    try:
        for body in (b"1", b"2", b"3"):
            assert (await t.post(body)).status == 200
    finally:
        await t.close()
    assert [r[2] for r in console.requests] == [b"1", b"2", b"3"]
    assert console.connections == 3


async def test_console_down_raises_unreachable() -> None:
    t = transport(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConsoleUnreachable):
        await t.post(b"{}")
    await t.close()


async def test_slow_console_times_out_and_the_next_post_reconnects(
    serve: Serve,
) -> None:
    async def hang_first(n: int) -> bytes | None:
        return None if n == 1 else answer(200)

    console = await serve(hang_first)
    t = transport(console.url, timeout=0.3)
    try:
        with pytest.raises(ConsoleUnreachable, match="TimeoutError"):
            await t.post(b"{}")
        assert (await t.post(b"{}")).status == 200
    finally:
        await t.close()
    assert console.connections == 2


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="http://"):
        transport("ftp://127.0.0.1:1")


async def shipper_against(
    console_url: str, spool: Path, *, timeout: float = 5.0, retry_max: float = 0.1
) -> Shipper:
    s = Shipper(
        console_url,
        NODE_TOKEN,
        spool,
        interval=0.02,
        batch_records=10,
        timeout=timeout,
        retry_max=retry_max,
    )
    await s.start()
    return s


async def test_shipper_spools_when_the_console_is_down_then_replays(
    serve: Serve, tmp_path: Path
) -> None:
    port = free_port()
    s = await shipper_against(f"http://127.0.0.1:{port}", tmp_path / "spool", retry_max=0.1)
    now = time.time()
    try:
        for i in range(25):
            s.emit(record(now, request_id=f"r{i}"))
        await wait_until_async(
            lambda: s.buffered == 0 and s.spooled_batches == 3,
            30,
            "s.buffered == 0 and s.spooled_batches == 3",
        )

        async def ok(n: int) -> bytes:
            return answer(200, b'{"accepted": 10}')

        console = await serve(ok, port)
        await wait_until_async(lambda: s.spooled_batches == 0, 30, "s.spooled_batches == 0")
    finally:
        await s.close()
    assert s.sent_batches == 3 and s.sent_records == 30 and s.dropped_total == 0
    ids = [b'"r0"', b'"r10"', b'"r20"']
    assert [i in r[2] for i, r in zip(ids, console.requests, strict=True)] == [True] * 3  # order


async def test_shipper_on_a_slow_console_times_out_and_spools(serve: Serve, tmp_path: Path) -> None:
    async def never(n: int) -> bytes | None:
        return None

    console = await serve(never)
    s = await shipper_against(console.url, tmp_path / "spool", timeout=0.3, retry_max=60)
    try:
        s.emit(record(time.time()))
        await wait_until_async(lambda: s.spooled_batches == 1, 30, "s.spooled_batches == 1")
        assert s.sent_batches == 0 and s.dropped_total == 0
    finally:
        await s.close()


@pytest.mark.parametrize(
    ("status", "spooled", "rejected"), [(422, 0, 1), (400, 0, 1), (401, 1, 0), (429, 1, 0)]
)
async def test_shipper_drops_batches_the_console_rejects_and_keeps_the_retryable(
    serve: Serve,
    tmp_path: Path,
    status: int,
    spooled: int,
    rejected: int,
) -> None:
    async def refuse(n: int) -> bytes:
        return answer(status, b'{"error": {"code": "x"}}')

    console = await serve(refuse)
    s = await shipper_against(console.url, tmp_path / "spool", retry_max=60)
    try:
        s.emit(record(time.time()))
        await wait_until_async(
            lambda: len(console.requests) == 1 and s.buffered == 0,
            30,
            "len(console.requests) == 1 and s.buffered == 0",
        )
        await wait_until_async(
            lambda: s.spooled_batches + s.rejected_total == 1,
            30,
            "s.spooled_batches + s.rejected_total == 1",
        )
        assert (s.spooled_batches, s.rejected_total, s.sent_batches) == (spooled, rejected, 0)
    finally:
        await s.close()

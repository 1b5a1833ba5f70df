"""The outbound client's transport against real loopback servers (asyncio streams)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from hypercare.response.channels import new_client
from hypercare.response.transport import PooledTransport
from tests.support import refused_port, wait_until_async

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


class Server:
    """A loopback HTTP server whose answers the test scripts; counts connections and
    keeps the requests' raw heads and bodies."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                if not await self.answer(reader, writer):
                    return
        finally:
            writer.close()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?x=1"


def reply(raw: bytes, keep: bool = True) -> Answer:
    async def answer(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(raw)
        await w.drain()
        return keep

    return answer


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with new_client(max_connections=4) as c:
        yield c


async def test_posts_reuse_one_keep_alive_connection(client: httpx.AsyncClient) -> None:
    async with Server(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as srv:
        for i in range(3):
            r = await client.post(srv.url, content=b'{"n":%d}' % i, headers={"X-A": "b"})
            assert (r.status_code, r.text) == (200, "ok")
    assert srv.connections == 1
    head, body = srv.requests[2]
    assert head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert b"\r\nX-A: b\r\n" in head and b"Content-Length: 7" in head
    assert body == b'{"n":2}'


async def test_chunked_and_close_delimited_answers(client: httpx.AsyncClient) -> None:
    chunked = b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    async with Server(reply(chunked)) as srv:
        r = await client.post(srv.url, content=b"x")
        assert (r.status_code, r.text) == (202, "abc")
        await client.post(srv.url, content=b"x")
    assert srv.connections == 1
    async with Server(reply(b"HTTP/1.1 500 Oops\r\n\r\nbroken", keep=False)) as srv:
        for _ in range(2):
            r = await client.post(srv.url, content=b"x")
            assert (r.status_code, r.text) == (500, "broken")
    assert srv.connections == 2  # no framing: the connection ends with the answer


async def test_a_connection_the_receiver_closed_while_idle_is_replaced(
    client: httpx.AsyncClient,
) -> None:
    # answers, then closes its side: the next request finds a dead pooled connection
    async with Server(reply(b"HTTP/1.1 204 No Content\r\n\r\n", keep=False)) as srv:
        for _ in range(3):
            assert (await client.post(srv.url, content=b"x")).status_code == 204
    assert srv.connections == 3


async def test_timeouts_and_refusals_are_httpx_errors(client: httpx.AsyncClient) -> None:
    async def hang(_r: asyncio.StreamReader, _w: asyncio.StreamWriter) -> bool:
        await asyncio.Event().wait()
        return False

    async with Server(hang) as srv:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(srv.url, content=b"x", timeout=0.2)
    with refused_port() as port, pytest.raises(httpx.ConnectError):
        await client.post(f"http://127.0.0.1:{port}/hook", content=b"x")
    async with Server(reply(b"garbage\r\n\r\n", keep=False)) as srv:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(srv.url, content=b"x")


async def test_the_pool_bounds_open_connections() -> None:
    gate = asyncio.Event()

    async def slow(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        await gate.wait()
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await w.drain()
        return True

    transport = PooledTransport(max_connections=2)
    async with httpx.AsyncClient(transport=transport) as c, Server(slow) as srv:
        sends = [asyncio.create_task(c.post(srv.url, content=b"x")) for _ in range(5)]
        await wait_until_async(lambda: len(srv.requests) >= 2, 30, "two requests in")
        assert srv.connections == 2
        gate.set()
        assert [r.status_code for r in await asyncio.gather(*sends)] == [200] * 5
        assert srv.connections == 2
        assert transport.idle_connections() == 2
    assert transport.idle_connections() == 0

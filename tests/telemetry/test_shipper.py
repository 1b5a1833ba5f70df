"""The shipper against a real console process (`hypercare up` on loopback): spool while the
console is down, ordered replay when it is back, and no acknowledged record lost to kill -9."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hypercare.telemetry.capture import CallCapture
from hypercare.telemetry.segments import F_REQUEST_ID, loads
from hypercare.telemetry.shipper import Shipper
from hypercare.telemetry.wire import decode_batch, encode_batch
from tests.support import Up, start_up, wait_until_async
from tests.telemetry.factory import record

NODE_TOKEN = "hcn_test-node-token-0123456789abcdef"
ADMIN_TOKEN = "hc_test-admin-token-0123456789abcdef"
# generous: the suite runs on busy shared cores, and each wait polls a condition
WAIT = 120.0


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Console:
    """`hypercare up` as a child process on a loopback port of its own.

    The shippers under test are pointed at the console before it runs, and it restarts on
    the same port: this process holds the port for the console's whole life with a socket
    bound to it that never listens (connections are refused while the console is down; no
    other process can take the port). Both sockets set SO_REUSEADDR, which lets the console
    bind and listen next to one that does not listen. Call `close()` when done."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._holder = socket.socket()
        self._holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._holder.bind(("127.0.0.1", 0))
        port = int(self._holder.getsockname()[1])
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.gateway_port = 0  # its gateway worker's, once started
        self.up: Up | None = None

    def start(self) -> None:
        self.up = start_up(
            self.data_dir,
            console_port=self.port,
            env={"HYPERCARE_NODE_TOKEN": NODE_TOKEN, "HYPERCARE_ADMIN_TOKEN": ADMIN_TOKEN},
        )
        self.gateway_port = self.up.gateway_port

    def close(self) -> None:
        """Release the port (after `stop`)."""
        self._holder.close()

    def kill9(self) -> None:
        if self.up is not None:
            self.up.kill9()
        self.up = None

    def stop(self) -> None:
        if self.up is not None:
            self.up.stop(timeout=10)
        self.up = None

    def calls(self) -> list[str]:
        db = sqlite3.connect(self.data_dir / "hypercare.db")
        try:
            blocks = db.execute("SELECT calls FROM telemetry_segments ORDER BY batch_id")
            return [row[F_REQUEST_ID] for (data,) in blocks for row in loads(data)]
        finally:
            db.close()

    def routes_requests(self) -> int:
        r = httpx.get(
            f"{self.url}/api/v1/analytics/routes",
            params={"from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )
        r.raise_for_status()
        return sum(row["requests"] for row in r.json()["rows"])


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    c = Console(tmp_path / "console")
    try:
        yield c
    finally:
        c.stop()
        c.close()


async def test_spool_survives_a_shipper_restart_and_replays_in_order(
    console: Console, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    ids = [f"r{i:05d}" for i in range(3000)]
    now = time.time()
    first = Shipper(console.url, NODE_TOKEN, spool, interval=0.02, batch_records=500)
    await first.start()
    for rid in ids[:1500]:
        first.emit(record(now, request_id=rid))
    await first.close()  # console down: close spools what it could not send
    assert first.spooled_batches == 3 and first.sent_records == 0
    second = Shipper(
        console.url, NODE_TOKEN, spool, interval=0.02, batch_records=500, retry_max=0.2
    )
    await second.start()
    try:
        for rid in ids[1500:]:
            second.emit(record(now, request_id=rid))
        await wait_until_async(
            lambda: second.buffered == 0 and second.spooled_batches == 6,
            WAIT,
            "second.buffered == 0 and second.spooled_batches == 6",
        )
        await asyncio.to_thread(console.start)
        # `up` binds the console's port before the console serves: a batch sent then may
        # time out while waiting in the backlog, be stored anyway and be acknowledged later
        # as a duplicate (accepted 0), so the store, not `sent_records`, is the measure
        await wait_until_async(
            lambda: second.spooled_batches == 0 and second.buffered == 0, WAIT, "the spool replayed"
        )
        assert second.spool_bytes == 0
    finally:
        await second.close()
    assert console.calls() == ids  # exactly once, in order
    assert not list(spool.iterdir())


async def test_kill_9_of_the_console_loses_no_acknowledged_record(
    console: Console, tmp_path: Path
) -> None:
    await asyncio.to_thread(console.start)
    spool = tmp_path / "spool"
    shipper = Shipper(
        console.url, NODE_TOKEN, spool, interval=0.02, batch_records=200, retry_max=0.2
    )
    await shipper.start()
    ids: list[str] = []

    def emit(n: int) -> None:
        now = time.time()
        for _ in range(n):
            rid = f"r{len(ids):05d}"
            ids.append(rid)
            shipper.emit(record(now, request_id=rid))

    try:
        for _ in range(20):
            emit(100)
            await asyncio.sleep(0.01)
        await wait_until_async(lambda: shipper.sent_records > 0, 60, "shipper.sent_records > 0")
        console.kill9()  # possibly with a batch in flight: committed or not, never acked
        # its console child and gateway worker notice they are orphaned (each checks once a
        # second), stop and exit. Until the console child has, it takes batches: what is
        # emitted below must find it gone, or nothing is spooled
        await wait_until_async(
            lambda: not listening(console.port) and not listening(console.gateway_port),
            60,
            "the orphaned console and gateway worker to stop listening",
        )
        for _ in range(20):  # keep emitting while the console is dead
            emit(100)
            await asyncio.sleep(0.01)
        await wait_until_async(
            lambda: shipper.buffered == 0 and shipper.spooled_batches > 0,
            60,
            "shipper.buffered == 0 and shipper.spooled_batches > 0",
        )
        await asyncio.to_thread(console.start)
        emit(500)
        await wait_until_async(
            lambda: shipper.buffered == 0 and shipper.spooled_batches == 0,
            60,
            "shipper.buffered == 0 and shipper.spooled_batches == 0",
        )
    finally:
        await shipper.close()
    await wait_until_async(
        lambda: len(console.calls()) == len(ids), 60, "len(console.calls()) == len(ids)"
    )
    stored = console.calls()
    assert sorted(stored) == sorted(ids) and len(set(stored)) == len(ids)
    # the restarted console rebuilt its live aggregates from the stored detail
    assert await asyncio.to_thread(console.routes_requests) == len(ids)


async def test_full_spool_drops_and_counts(tmp_path: Path, dead_port: int) -> None:
    url = f"http://127.0.0.1:{dead_port}"  # nothing listens there
    shipper = Shipper(
        url,
        NODE_TOKEN,
        tmp_path / "spool",
        interval=0.02,
        batch_records=100,
        max_spool_bytes=40_000,
    )
    await shipper.start()
    now = time.time()
    for i in range(2000):
        shipper.emit(record(now, request_id=f"r{i}"))
    await shipper.close()
    assert shipper.spool_bytes <= 40_000
    assert shipper.dropped_total > 0
    spooled = shipper.spooled_batches * 100
    assert spooled + shipper.dropped_total == 2000
    shipper.emit(record(now))  # after close: dropped, never raises
    assert shipper.dropped_total + spooled == 2001


async def test_emit_many_buffers_in_order_and_drops_what_does_not_fit(
    tmp_path: Path, dead_port: int
) -> None:
    shipper = Shipper(
        f"http://127.0.0.1:{dead_port}", NODE_TOKEN, tmp_path / "spool", max_buffer_records=5
    )
    now = time.time()
    first = [record(now, request_id=f"a{i}") for i in range(3)]
    second = [record(now, request_id=f"b{i}") for i in range(4)]
    shipper.emit_many(first)
    shipper.emit_many(second)
    assert shipper.buffered == 5 and shipper.dropped_total == 2  # as 7 emits would
    taken = [r.request_id for r in shipper._records]
    assert taken == ["a0", "a1", "a2", "b0", "b1"]
    shipper.emit_many([])
    assert shipper.buffered == 5 and shipper.dropped_total == 2
    await shipper.start()
    await shipper.close()  # spooled: the console is away
    shipper.emit_many(first)  # after close: dropped and counted, never raises
    assert shipper.dropped_total == 5
    assert shipper.spooled_batches == 1


def test_encoded_batches_decode_to_the_same_records_and_captures() -> None:
    now = time.time()
    records = [
        record(now, request_id="r1"),
        record(now + 0.5, route="pay\u00e9", total_ms=3.0, error="timeout"),
        record(now, request_id="bad-\ud800"),  # orjson refuses a lone surrogate: stdlib path
    ]
    caps = {1: CallCapture((("a", "b"),), (), b"x", b"\x00\xffy")}
    for batch in (records[:2], records):
        body = encode_batch("k" * 32, batch, caps, sent_at=now, dropped_total=4, spool_bytes=7)
        got = decode_batch(body)
        assert got.records == batch and got.captures == caps
        assert (got.key, got.sent_at, got.dropped_total, got.spool_bytes) == ("k" * 32, now, 4, 7)

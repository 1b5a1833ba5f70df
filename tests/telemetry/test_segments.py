"""Call detail stored as one block per batch: searches over many overlapping blocks give
exactly the calls and the order a row-by-row scan would, and read only the blocks that
can match; on both stores."""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.gateway.records import CallRecord
from hypercare.store.db import session_factory
from hypercare.telemetry import calls, segments
from hypercare.telemetry.collector import Collector
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.models import TelemetrySegment
from hypercare.telemetry.wire import Batch, decode_batch, encode_batch
from tests.telemetry.factory import record, stored_calls

ROUTES = ("orders", "pay", "search")
CONSUMERS = ("web", "ios", "partner")


def _records(rng: random.Random, n: int, start: float) -> list[CallRecord]:
    out = []
    for i in range(n):
        status = rng.choice((200, 200, 200, 201, 404, 429, 500, 503))
        out.append(
            record(
                start + rng.random() * 600,
                route=rng.choice(ROUTES),
                consumer=rng.choice(CONSUMERS),
                status=status,
                error=rng.choice(("timeout", "upstream_connect")) if status >= 500 else "",
                request_id=f"r-{i:05d}",
            )
        )
    return out


async def _ingest_interleaved(engine: AsyncEngine, recs: list[CallRecord]) -> None:
    """Three nodes' batches of different sizes, with overlapping time ranges."""
    collector = Collector(engine, TelemetryConfig(), LiveStore())
    rng = random.Random(7)
    at = 0
    while at < len(recs):
        size = rng.choice((1, 7, 40, 90))
        body = encode_batch(uuid.uuid4().hex, recs[at : at + size], sent_at=time.time())
        await collector.ingest(rng.choice(("n1", "n2", "n3")), decode_batch(body))
        at += size


FILTERS: list[dict[str, Any]] = [
    {},
    {"route": "pay"},
    {"consumer": "ios", "route": "orders"},
    {"status": "5xx"},
    {"status": "404"},
    {"error": "any"},
    {"error": "timeout", "route": "search"},
    {"route": "nowhere"},
]


def _wanted(recs: list[CallRecord], f: dict[str, Any], start: float, end: float) -> list[str]:
    def ok(r: CallRecord) -> bool:
        if "route" in f and r.route != f["route"]:
            return False
        if "consumer" in f and r.consumer != f["consumer"]:
            return False
        s = f.get("status")
        if s == "5xx" and not 500 <= r.status < 600:
            return False
        if s == "404" and r.status != 404:
            return False
        e = f.get("error")
        if e == "any" and not r.error:
            return False
        if e not in (None, "any") and r.error != e:
            return False
        return start <= r.time < end

    return [r.request_id for r in sorted(recs, key=lambda r: r.time, reverse=True) if ok(r)]


@pytest.mark.parametrize("limit", [1, 13, 200])
async def test_searches_over_many_blocks_match_a_row_scan(engine: AsyncEngine, limit: int) -> None:
    rng = random.Random(limit)
    start = time.time() - 3600
    recs = _records(rng, 120 if limit == 1 else 700, start)
    await _ingest_interleaved(engine, recs)
    async with session_factory(engine)() as session:
        for f in FILTERS:
            for lo, hi in ((start - 10, start + 700), (start + 100, start + 250)):
                got: list[str] = []
                cursor = None
                while True:
                    page = await calls.list_calls(
                        session=session, start=lo, end=hi, limit=limit, cursor=cursor, **f
                    )
                    got += [c.request_id for c in page.items]
                    assert len(page.items) <= limit
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                assert got == _wanted(recs, f, lo, hi), (f, lo, hi)


async def test_a_filtered_search_reads_only_blocks_that_can_match(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    collector = Collector(engine, TelemetryConfig(), LiveStore())
    for i in range(20):
        recs = [record(now - 600 + i * 10 + j, request_id=f"b{i}-{j}") for j in range(5)]
        if i == 3:
            recs.append(record(now - 600 + 35.5, route="rare", status=502, request_id="rare"))
        if i == 5:  # the one failure of a route that is in every block
            recs.append(record(now - 600 + 55.5, status=503, error="timeout", request_id="busy"))
        await collector.ingest("n", Batch(uuid.uuid4().hex, now, 0, 0, recs, {}))
    read: list[int] = []
    load = calls.load_blocks

    async def counting(session: Any, batch_ids: Any) -> dict[int, list[Any]]:
        ids = list(batch_ids)
        read.extend(ids)
        return await load(session, ids)

    monkeypatch.setattr(calls, "load_blocks", counting)
    async with session_factory(engine)() as session:
        for f, want in (
            ({"route": "rare"}, ["rare"]),
            ({"status": "502"}, ["rare"]),
            ({"status": "5xx"}, ["busy", "rare"]),
            ({"error": "any"}, ["busy"]),
            ({"route": "orders", "status": "5xx"}, ["busy"]),
            ({"route": "orders", "error": "timeout", "consumer": "shop"}, ["busy"]),
            ({"route": "orders", "status": "502"}, []),
        ):
            read.clear()
            page = await calls.list_calls(session=session, **f)
            assert [c.request_id for c in page.items] == want, f
            assert len(read) == len(want), f
        # no filter: a page of 4 (and the 5th call, that says there is more) is in the
        # newest block; read one block at a time, that is the only one read
        monkeypatch.setattr(calls, "FIRST_READ_BYTES", 1)
        read.clear()
        page = await calls.list_calls(session=session, limit=4)
        assert [c.request_id for c in page.items] == [f"b19-{j}" for j in reversed(range(1, 5))]
        assert len(read) == 1 and page.next_cursor


async def test_text_the_fast_encoder_refuses_is_stored_and_read_back(engine: AsyncEngine) -> None:
    now = time.time()
    odd = record(now, request_id="odd")._replace(user_agent="bad\ud800agent", path="/é")
    collector = Collector(engine, TelemetryConfig(), LiveStore())
    await collector.ingest("n", Batch("batch-odd-1", now, 0, 0, [odd, record(now)], {}))
    stored = {c.request_id: c for c in await stored_calls(engine)}
    assert stored["odd"].user_agent == "bad\ud800agent" and stored["odd"].path == "/é"


def test_refs_and_ids_keep_batch_and_position_apart() -> None:
    for batch_id, pos, kind in ((1, 0, 0), (123456789, 19999, 1), (2**40, 7, 0)):
        assert segments.place(segments.ref(batch_id, pos, kind)) == (batch_id, pos, kind)
        assert segments.call_id(batch_id, pos) >> segments.POS_BITS == batch_id
    assert segments.tagset(["b", "a", "b"]) == "\na\nb\n" and segments.tagset([]) == "\n"


async def test_blocks_are_stored_compressed_and_plain_json_blocks_still_read(
    engine: AsyncEngine,
) -> None:
    now = time.time()
    recs = [record(now + i / 10, request_id=f"c-{i}") for i in range(200)]
    collector = Collector(engine, TelemetryConfig(), LiveStore())
    await collector.ingest("n", decode_batch(encode_batch("batch-zstd-1", recs, sent_at=now)))
    async with engine.begin() as conn:
        batch_id, data = (
            await conn.execute(sa.select(TelemetrySegment.batch_id, TelemetrySegment.calls))
        ).one()
        assert data[:4] == segments.ZSTD_MAGIC
        plain = json.dumps(segments.loads(data)).encode()
        assert len(data) * 3 < len(plain)  # ~4x smaller on these records
        # a block written before compression: plain JSON
        await conn.execute(
            sa.update(TelemetrySegment)
            .where(TelemetrySegment.batch_id == batch_id)
            .values(calls=plain)
        )
    stored = await stored_calls(engine)
    assert sorted(c.request_id for c in stored) == sorted(f"c-{i}" for i in range(200))
    async with session_factory(engine)() as session:
        found = await calls.get_call(session=session, request_id="c-17")
    assert found is not None and found.request_id == "c-17"

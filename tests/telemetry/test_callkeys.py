"""Call lookup by request and trace id through the time-prefixed keys, on both stores."""

from __future__ import annotations

import json
import time

import pytest
from alembic import command
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.errors import NotFound
from hypercare.store.db import session_factory
from hypercare.store.migrate import alembic_config, migrate
from hypercare.telemetry import calls
from hypercare.telemetry.callkeys import SECOND, call_key, id_hash, keys_of, windows_back
from hypercare.telemetry.collector import Collector
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.models import TelemetryBatch, TelemetrySegment
from hypercare.telemetry.segments import F_REQUEST_ID, call_id, loads
from hypercare.telemetry.wire import Batch
from tests.telemetry.factory import record

HOUR = 3600.0


def test_keys_of_one_second_share_their_prefix_and_fit_64_bits() -> None:
    a, b = call_key("req-a", 1_800_000_000.2), call_key("req-b", 1_800_000_000.9)
    assert a // SECOND == b // SECOND == 1_800_000_000
    assert a % SECOND == id_hash("req-a") and a != b
    assert call_key("req-a", 1_800_000_001.0) - a == SECOND
    # the latest time the collector accepts still fits a signed 64-bit column
    assert call_key("\U0010ffff" * 64, 4_102_444_799.9) < 2**63
    # ids that are not valid UTF-8 text (lone surrogates) still get a key
    assert call_key("bad\ud800id", 1e9) >= 0
    # the column-wise version gives the same keys
    ids, times = ["req-a", "bad\ud800id", "x"], [1e9, 1.5e9 + 0.7, 4_102_444_799.9]
    assert keys_of(ids, times) == [call_key(i, t) for i, t in zip(ids, times, strict=True)]
    assert keys_of(ids[::2], times[::2]) == [call_key(ids[0], times[0]), call_key("x", times[2])]


def test_search_windows_go_back_newest_first_without_gaps() -> None:
    now = 10_000_000.0
    got = list(windows_back(now, now - 72 * HOUR))
    assert got[0] == (now - 300, now + 60) and got[1] == (now - HOUR, now - 300)
    assert got[-1][0] == now - 72 * HOUR
    assert all(got[i][0] == got[i + 1][1] for i in range(len(got) - 1))
    # a horizon inside the first window is one window
    assert list(windows_back(now, now - 60)) == [(now - 60, now + 60)]


async def _store(engine: AsyncEngine, now: float) -> None:
    collector = Collector(engine, TelemetryConfig(), LiveStore())
    recs = [
        record(now - 70 * HOUR, request_id="old"),
        record(now - 5 * HOUR, request_id="hours-ago"),
        record(now - 10, request_id="recent", status=503, error="timeout"),
        # a retried request id: the newest call is the one shown
        record(now - 20 * HOUR, request_id="twice", route="first"),
        record(now - 30, request_id="twice", route="second"),
    ]
    await collector.ingest("node-1", Batch("batch-0001", now, 0, 0, recs, {}))


async def test_lookup_by_request_and_trace_id_over_the_whole_retention(
    engine: AsyncEngine,
) -> None:
    now = time.time()
    await _store(engine, now)
    async with session_factory(engine)() as session:
        for rid in ("old", "hours-ago", "recent"):
            found = await calls.get_call(session=session, request_id=rid, now=now)
            assert found.request_id == rid
        assert (await calls.get_call(session=session, request_id="twice")).route == "second"
        page = await calls.list_calls(session=session, request_id="twice", now=now)
        assert [c.route for c in page.items] == ["second", "first"]
        # paged one at a time through the cursor, across the search windows
        first = await calls.list_calls(session=session, request_id="twice", limit=1, now=now)
        assert [c.route for c in first.items] == ["second"] and first.next_cursor
        rest = await calls.list_calls(
            session=session, request_id="twice", limit=1, cursor=first.next_cursor, now=now
        )
        assert [c.route for c in rest.items] == ["first"] and rest.next_cursor is None
        # a hint of when the call happened is searched first; a wrong hint still finds it
        hinted = await calls.get_call(
            session=session, request_id="old", near=now - 70 * HOUR + 30, now=now
        )
        assert hinted.request_id == "old"
        wrong = await calls.get_call(session=session, request_id="old", near=now, now=now)
        assert wrong.request_id == "old"
        # a shorter horizon (retention) does not reach the oldest call
        with pytest.raises(NotFound):
            await calls.get_call(session=session, request_id="old", horizon=24 * HOUR, now=now)
        recent = await calls.get_call(session=session, request_id="recent", now=now)
        by_trace = await calls.list_calls(session=session, trace_id=recent.trace_id, now=now)
        assert [c.request_id for c in by_trace.items] == ["recent"]
        # an explicit range searches only that range
        inside = await calls.list_calls(
            session=session, request_id="hours-ago", start=now - 6 * HOUR, end=now - 4 * HOUR
        )
        assert [c.request_id for c in inside.items] == ["hours-ago"]
        outside = await calls.list_calls(
            session=session, request_id="hours-ago", start=now - 4 * HOUR, end=now
        )
        assert outside.items == []
        # other filters still apply to id lookups
        assert (
            await calls.list_calls(session=session, request_id="recent", status="2xx", now=now)
        ).items == []


async def test_a_hash_collision_never_returns_another_call(engine: AsyncEngine) -> None:
    now = time.time()
    await _store(engine, now)
    # another id whose key (same second, same hash) is the key of "old": the key finds
    # the call, the id comparison refuses it
    async with engine.begin() as conn:
        data = await conn.scalar(select(TelemetrySegment.calls))
        rows = loads(data)
        for row in rows:
            if row[F_REQUEST_ID] == "old":
                row[F_REQUEST_ID] = "impostor"
        await conn.execute(update(TelemetrySegment).values(calls=json.dumps(rows).encode()))
    async with session_factory(engine)() as session:
        with pytest.raises(NotFound):
            await calls.get_call(session=session, request_id="old", now=now)
        assert (await calls.get_call(session=session, request_id="recent", now=now)).status == 503


def _downgrade(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, revision)


async def test_calls_stored_before_the_migrations_are_found_after_them(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0003_detection")
        batch = await conn.scalar(
            insert(TelemetryBatch.__table__)  # type: ignore[arg-type]
            .values(batch_key="b-000001", node="n", received_at=1.0, records=1, aggregated=True)
            .returning(TelemetryBatch.id)
        )
        r = record(1_800_000_000.5, request_id="before-keys")
        values = dict(r._asdict(), ts=r.time, batch_id=batch)
        del values["time"]
        cols = ", ".join(values)
        marks = ", ".join(f":{c}" for c in values)
        await conn.execute(text(f"INSERT INTO telemetry_calls ({cols}) VALUES ({marks})"), values)
    await migrate(engine)
    async with session_factory(engine)() as session:
        found = await calls.get_call(session=session, request_id="before-keys", now=1_800_000_100.0)
        assert found.trace_id == r.trace_id and found.time.timestamp() == r.time
        assert found.id == call_id(batch, 0)
        by_trace = await calls.list_calls(
            session=session, trace_id=r.trace_id, start=r.time - 60, end=r.time + 60
        )
        assert [c.request_id for c in by_trace.items] == ["before-keys"]
        by_route = await calls.list_calls(
            session=session, route=r.route, status="2xx", start=r.time - 60, end=r.time + 60
        )
        assert [c.request_id for c in by_route.items] == ["before-keys"]


async def test_blocks_go_back_to_rows_on_downgrade_and_return(engine: AsyncEngine) -> None:
    now = time.time()
    await _store(engine, now)
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0004_telemetry_keys")
        stored = await conn.scalar(text("SELECT count(*) FROM telemetry_calls"))
        assert stored == 5
    await migrate(engine)
    async with session_factory(engine)() as session:
        for rid in ("old", "hours-ago", "recent"):
            found = await calls.get_call(session=session, request_id=rid, now=now)
            assert found.request_id == rid

"""Collector, rollups, recovery, hour compaction and retention on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import time
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.config import parse_config
from hypercare.gateway.records import CallRecord
from hypercare.store.db import session_factory
from hypercare.telemetry import query
from hypercare.telemetry.capture import CallCapture
from hypercare.telemetry.collector import Collector, recover
from hypercare.telemetry.compaction import expire, rollup_hours
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.histogram import ALPHA
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.models import (
    SIZES,
    TelemetryCallKey,
    TelemetryHour,
    TelemetryMinute,
    TelemetrySegmentRoute,
)
from hypercare.telemetry.redact import REDACTED, Redactor
from hypercare.telemetry.wire import Batch
from tests.telemetry.factory import random_records, record, stored_calls

HOUR = 3600


def batch(records: list[CallRecord], captures: dict[int, CallCapture] | None = None) -> Batch:
    return Batch(uuid.uuid4().hex, time.time(), 0, 0, records, captures or {})


def collector(engine: AsyncEngine, cfg: TelemetryConfig | None = None) -> Collector:
    return Collector(engine, cfg or TelemetryConfig(), LiveStore())


async def summary(
    c: Collector, start: float, end: float, dim: str = "route"
) -> dict[str, query.RouteSummary]:
    async with session_factory(c.engine)() as s:
        rows = await query.summary(s, c.live, dim=dim, start=start, end=end, now=end)
    return {r.key: r for r in rows}


def exact_p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


async def count(engine: AsyncEngine, table: type) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_live_minute_then_rollups_give_exact_counts_and_bounded_percentiles(
    engine: AsyncEngine,
) -> None:
    c = collector(engine)
    start = (int(time.time()) // HOUR - 2) * HOUR
    recs = random_records(3000, start, 600, routes=3)
    for i in range(0, len(recs), 500):
        assert await c.ingest("node-a", batch(recs[i : i + 500])) == (500, False)
    assert len(await stored_calls(engine)) == 3000

    def check(got: dict[str, query.RouteSummary]) -> None:
        for route in {r.route for r in recs}:
            mine = [r for r in recs if r.route == route]
            row = got[route]
            assert row.requests == len(mine)
            assert row.c5xx == sum(r.status >= 500 for r in mine)
            assert row.c4xx == sum(400 <= r.status < 500 for r in mine)
            assert row.auth_failures == sum(r.status in (401, 403) for r in mine)
            assert row.rate_limited == sum(r.status == 429 for r in mine)
            assert row.upstream_errors == sum(r.error == "timeout" for r in mine)
            for q, got_p in ((0.5, row.p50_ms), (0.95, row.p95_ms), (0.99, row.p99_ms)):
                want = exact_p([r.total_ms for r in mine], q)
                assert got_p is not None and abs(got_p - want) <= ALPHA * want

    check(await summary(c, start, start + HOUR))  # from memory only
    assert await count(engine, TelemetryMinute) == 0
    written = await c.flush(now=start + 2 * HOUR)
    assert written > 0 and not c.live.pending
    check(await summary(c, start, start + HOUR))  # from minute rollups only
    await rollup_hours(c, now=start + 3 * HOUR)
    assert await count(engine, TelemetryHour) > 0
    check(await summary(c, start, start + HOUR))  # from the hour rollup


async def test_a_resent_batch_is_stored_once(engine: AsyncEngine) -> None:
    c = collector(engine)
    b = batch([record(time.time()) for _ in range(10)])
    assert await c.ingest("n", b) == (10, False)
    assert await c.ingest("n", b) == (0, True)
    assert len(await stored_calls(engine)) == 10
    assert c.live.stats.duplicates == 1


async def test_restart_rebuilds_unflushed_minutes_without_double_counting(
    engine: AsyncEngine,
) -> None:
    c = collector(engine)
    t0 = (int(time.time()) // 60 - 30) * 60
    # each batch spans two minutes, so a flush in between leaves it partly flushed
    batches = [
        [record(t0 + m * 60 + s) for m in (i, i + 1) for s in range(0, 60, 6)] for i in range(4)
    ]
    for recs in batches:
        await c.ingest("n", batch(recs))
    await c.flush(now=t0 + 2 * 60 + 11)  # minutes t0 and t0+60 are closed
    # the console dies here: a new process recovers from the store
    fresh = collector(engine)
    assert await recover(engine, fresh.live) > 0
    total = sum(len(b) for b in batches)
    assert (await summary(fresh, t0, t0 + 600))["orders"].requests == total
    await fresh.flush(now=t0 + 3600)
    again = collector(engine)
    assert await recover(engine, again.live) == 0
    assert (await summary(again, t0, t0 + 600))["orders"].requests == total


async def test_late_records_for_rolled_up_hours_are_counted(engine: AsyncEngine) -> None:
    c = collector(engine)
    base = (int(time.time()) // HOUR - 5) * HOUR
    await c.ingest("n", batch([record(base + 10, total_ms=5.0) for _ in range(100)]))
    assert await rollup_hours(c, now=base + 3 * HOUR) >= 2
    # a replayed spool brings records of the rolled-up hour
    await c.ingest("n", batch([record(base + 20, total_ms=500.0) for _ in range(100)]))
    await c.flush(now=base + 3 * HOUR)
    got = (await summary(c, base, base + HOUR))["orders"]
    assert got.requests == 200
    assert got.p99_ms is not None and abs(got.p99_ms - 500) <= 5
    # the same range read from minutes (not whole hours) agrees
    got_min = (await summary(c, base, base + HOUR - 60))["orders"]
    assert got_min.requests == 200


async def test_retention_deletes_expired_rows_in_small_batches(engine: AsyncEngine) -> None:
    cfg = parse_config("telemetry:\n  delete_batch: 100\n").telemetry
    c = collector(engine, cfg)
    now = time.time()
    old = now - 80 * HOUR
    await c.ingest("n", batch([record(old + i) for i in range(250)]))
    await c.ingest("n", batch([record(now - 60) for _ in range(5)]))
    await c.flush(now=now)
    await rollup_hours(c, now=now)
    deleted = await expire(c, now)
    assert deleted["calls"] == 250 and deleted["call_keys"] == 500
    assert len(await stored_calls(engine)) == 5
    # the blocks' route parts and the calls' keys go with them
    assert await count(engine, TelemetrySegmentRoute) == 1
    assert await count(engine, TelemetryCallKey) == 10
    # rollups outlive call detail
    assert (await summary(c, old - 60, old + 400))["orders"].requests == 250
    later = now + 40 * 86400
    await rollup_hours(c, now=later)
    deleted = await expire(c, later)
    assert deleted["minutes"] > 0
    hour = old - old % HOUR  # past minute retention, ranges are answered in whole hours
    assert (await summary(c, hour, hour + 2 * HOUR))["orders"].requests == 250


async def test_captures_are_redacted_before_they_are_stored(engine: AsyncEngine) -> None:
    cfg = parse_config(
        "telemetry:\n  capture:\n    default: errors\n    routes:\n      open: off\n"
        "    max_body_bytes: 64\n  redact:\n    fields: [email]\n"
    ).telemetry
    c = collector(engine, cfg)
    cap = CallCapture(
        (("Authorization", "Bearer sekrit"), ("Content-Type", "application/json")),
        (("Set-Cookie", "sid=sekrit"),),
        b'{"email": "a@b.c", "password": "sekrit", "n": 1}',
        b'{"error": "boom", "token": "sekrit"}' + b" " * 100,
    )
    now = time.time()
    recs = [
        record(now, status=500, request_id="err"),
        record(now, status=200, request_id="ok"),
        record(now, status=500, route="open", request_id="off"),
    ]
    await c.ingest("n", batch(recs, {0: cap, 1: cap, 2: cap}))
    rows = {c.request_id: c.capture for c in await stored_calls(engine)}
    assert rows["ok"] is None and rows["off"] is None  # policy refuses them
    assert "sekrit" not in json.dumps(rows["err"])
    stored = rows["err"]
    assert stored is not None
    assert dict(stored["request_headers"])["Authorization"] == REDACTED
    assert '"email": "[REDACTED]"' in stored["request_body"]
    assert stored["truncated"] is True


class _FailingRedactor(Redactor):
    def redact_body(self, body: bytes, content_type: str = "", *, truncated: bool = False) -> None:
        raise ValueError(f"cannot redact {body!r}")


async def test_a_capture_that_cannot_be_redacted_is_dropped_and_its_record_kept(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    c = collector(engine, parse_config("telemetry:\n  capture: {default: all}\n").telemetry)
    c.redactor = _FailingRedactor()
    cap = CallCapture((), (), b'{"password": "sekrit"}', b"")
    await c.ingest("n", batch([record(time.time(), request_id="kept")], {0: cap}))
    (stored,) = [r for r in await stored_calls(engine) if r.request_id == "kept"]
    assert stored.capture is None
    assert "capture of call kept dropped (ValueError)" in caplog.text
    assert "sekrit" not in caplog.text


async def test_long_strings_are_cut_to_their_column_sizes(engine: AsyncEngine) -> None:
    c = collector(engine)
    t = time.time()
    long = record(t)._replace(path="/p" + "é" * 3000, user_agent="u" * 900, error="x" * 50)
    # one batch takes the plain path, one (with a capture) the path with per-row values
    cap = CallCapture((), (), b"", b"")
    await c.ingest("n", batch([long, record(t)]))
    await c.ingest("n", batch([long._replace(status=500), record(t)], {0: cap}))
    rows = [c for c in await stored_calls(engine) if c.user_agent != "bench"]
    cut = [r for r in rows if r.path.startswith("/pé")]
    assert len(cut) == 2
    for r in cut:
        assert r.path == ("/p" + "é" * 3000)[: SIZES["path"]]
        assert r.user_agent == "u" * SIZES["user_agent"]
        assert r.error == "x" * SIZES["error"]

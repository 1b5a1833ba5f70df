"""Hour rollups and retention, run by a background job in small transactions.

`rollup_hours` merges the minute rows of each closed hour into hour rows and advances the
``hours_rolled_until`` watermark (queries read whole hours before it from the hour table).
`expire` deletes rows past their retention tier in batches of ``delete_batch`` rows, one
short transaction each, so ingest is never blocked for long.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from hypercare.telemetry.aggregate import Aggregate
from hypercare.telemetry.collector import HOURS_UNTIL, Collector, hours_until
from hypercare.telemetry.models import (
    TelemetryBatch,
    TelemetryCallKey,
    TelemetryHour,
    TelemetryMinute,
    TelemetrySegment,
    TelemetrySegmentRoute,
    TelemetryState,
)

MAX_HOURS_PER_PASS = 48
_ALL_HISTS = ("total", "upstream", "gateway")


async def rollup_hours(collector: Collector, now: float) -> int:
    """Roll up every closed hour not yet rolled up (at most 48 per pass); returns how many."""
    await collector.flush(now)
    grace = collector.config.minute_grace.total_seconds()
    cutoff = int((now - grace) // 60) * 60
    limit = cutoff - cutoff % 3600
    done = 0
    async with collector.live.lock:
        async with collector.writing() as conn:
            rolled = await hours_until(conn)
            if rolled is None:
                first = await conn.scalar(select(func.min(TelemetryMinute.bucket)))
                rolled = limit if first is None else int(first) - int(first) % 3600
                conn_value: dict[str, Any] = {"name": HOURS_UNTIL, "value": rolled}
                await conn.execute(insert(TelemetryState).values(**conn_value))
        while rolled < limit and done < MAX_HOURS_PER_PASS:
            async with collector.writing() as conn:
                merged: dict[tuple[str, str], Aggregate] = defaultdict(Aggregate)
                table = TelemetryMinute.__table__
                rows = await conn.execute(
                    select(table).where(
                        TelemetryMinute.bucket >= rolled, TelemetryMinute.bucket < rolled + 3600
                    )
                )
                for row in rows:
                    merged[(row.dim, row.key)].merge_row(row, histograms=_ALL_HISTS)
                if merged:
                    await conn.execute(
                        insert(TelemetryHour),
                        [a.to_row(d, k, rolled) for (d, k), a in merged.items()],
                    )
                rolled += 3600
                await conn.execute(
                    update(TelemetryState)
                    .where(TelemetryState.name == HOURS_UNTIL)
                    .values(value=rolled)
                )
            done += 1
    return done


async def _delete_where(collector: Collector, table: Any, cond: Any, batch: int) -> int:
    deleted = 0
    while True:
        async with collector.writing() as conn:
            ids = list((await conn.scalars(select(table.id).where(cond).limit(batch))).all())
            if ids:
                await conn.execute(delete(table).where(table.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < batch:
            return deleted
        await asyncio.sleep(0)  # let ingest and queries run between batches


async def _expire_segments(collector: Collector, before: float, batch: int) -> int:
    """Delete the call blocks whose calls are all older than `before` (but never one whose
    batch is not in the rollups yet), about `batch` calls per transaction; returns calls."""
    waiting = select(TelemetryBatch.id).where(TelemetryBatch.aggregated.is_(False))
    cond = (TelemetrySegment.last_ts < before) & TelemetrySegment.batch_id.not_in(waiting)
    deleted = 0
    per = max(1, batch // 100)  # blocks looked at per transaction
    while True:
        async with collector.writing() as conn:
            blocks = (
                await conn.execute(
                    select(TelemetrySegment.batch_id, func.coalesce(TelemetryBatch.records, 0))
                    .outerjoin(TelemetryBatch, TelemetryBatch.id == TelemetrySegment.batch_id)
                    .where(cond)
                    .order_by(TelemetrySegment.last_ts)
                    .limit(per)
                )
            ).all()
            ids, calls = [], 0
            for batch_id, records in blocks:
                ids.append(batch_id)
                calls += records
                if calls >= batch:
                    break
            if ids:
                await conn.execute(
                    delete(TelemetrySegment).where(TelemetrySegment.batch_id.in_(ids))
                )
                await conn.execute(
                    delete(TelemetrySegmentRoute).where(TelemetrySegmentRoute.batch_id.in_(ids))
                )
        deleted += calls
        if not ids or (len(ids) == len(blocks) < per):
            return deleted
        await asyncio.sleep(0)  # let ingest and queries run between batches


async def _expire_keys(collector: Collector, before: float, batch: int) -> int:
    """Delete the lookup keys of calls older than `before`, `batch` keys per transaction
    (keys start with their call's second: this is a range at the start of the index)."""
    limit = int(before) << 31
    key = TelemetryCallKey.key
    deleted = 0
    while True:
        async with collector.writing() as conn:
            bound = await conn.scalar(
                select(key).where(key < limit).order_by(key).offset(batch).limit(1)
            )
            result = await conn.execute(
                delete(TelemetryCallKey).where(key < (limit if bound is None else bound))
            )
        deleted += result.rowcount or 0
        if bound is None:
            return deleted
        await asyncio.sleep(0)


async def expire(collector: Collector, now: float) -> dict[str, int]:
    """Delete call detail, batches, minute and hour rollups past their retention."""
    cfg = collector.config
    keep = cfg.retention
    batch = cfg.delete_batch
    engine = collector.engine
    async with engine.connect() as conn:
        rolled = await hours_until(conn) or 0
    calls_before = now - keep.calls.total_seconds()
    minutes_before = min(now - keep.minutes.total_seconds(), rolled)
    hours_before = now - keep.hours.total_seconds()
    return {
        "calls": await _expire_segments(collector, calls_before, batch),
        "call_keys": await _expire_keys(collector, calls_before, batch),
        "batches": await _delete_where(
            collector,
            TelemetryBatch,
            (TelemetryBatch.received_at < calls_before) & TelemetryBatch.aggregated.is_(True),
            batch,
        ),
        "minutes": await _delete_where(
            collector, TelemetryMinute, TelemetryMinute.bucket < minutes_before, batch
        ),
        "hours": await _delete_where(
            collector, TelemetryHour, TelemetryHour.bucket < hours_before, batch
        ),
    }

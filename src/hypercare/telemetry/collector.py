"""The console side of shipping: store batches durably, keep live aggregates, flush rollups.

`ingest` writes one batch (its row and all its call detail) in one transaction with
multi-row inserts, then adds the records to the live aggregates. Only after that returns
is the batch acknowledged, so an acknowledged record is always in the store.
`flush` writes closed minutes as rollup rows and flags their batches aggregated, in one
transaction. `recover` rebuilds the live aggregates of unflagged batches at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from itertools import chain, repeat
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.aggregate import Aggregate, Key
from hypercare.telemetry.callkeys import keys_of
from hypercare.telemetry.capture import CallCapture, should_capture
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.models import (
    SIZES,
    TelemetryBatch,
    TelemetryCall,
    TelemetryHour,
    TelemetryMinute,
    TelemetryState,
)
from hypercare.telemetry.redact import Redactor
from hypercare.telemetry.wire import Batch

log = logging.getLogger("hypercare.telemetry")

HOURS_UNTIL = "hours_rolled_until"
_CALL_COLUMNS = CallRecord._fields
_LIMITS = [(i, SIZES[f]) for i, f in enumerate(_CALL_COLUMNS) if f in SIZES]
_ID_CHUNK = 500
_REQUEST_ID, _TRACE_ID = _CALL_COLUMNS.index("request_id"), _CALL_COLUMNS.index("trace_id")


def call_rows(
    records: list[CallRecord], batch_id: int, captures: dict[int, str | None]
) -> list[tuple[Any, ...]]:
    """The insert parameters of a batch's records, built column by column (C-level zip and
    map instead of a Python step per field): strings cut to their column sizes, then the
    batch id, the capture and the two lookup keys."""
    n = len(records)
    cols: list[Sequence[Any]] = list(zip(*records))  # noqa: B905 - records are uniform
    for i, size in _LIMITS:
        if max(map(len, cols[i])) > size:
            cols[i] = [v[:size] for v in cols[i]]
    times = cols[0]
    capture: list[str | None] = [None] * n
    for i, text in captures.items():
        capture[i] = text
    return list(
        zip(
            *cols,
            repeat(batch_id, n),
            capture,
            keys_of(cols[_REQUEST_ID], times),
            keys_of(cols[_TRACE_ID], times),
            strict=True,
        )
    )


_INSERT_COLUMNS = (
    "ts",
    *_CALL_COLUMNS[1:],
    "batch_id",
    "capture",
    "request_key",
    "trace_key",
)


def insert_calls_sql(paramstyle: str) -> str:
    """A plain multi-row INSERT for the driver's executemany: on the ingest path the
    per-row parameter processing of SQLAlchemy costs more than the insert itself."""
    n = len(_INSERT_COLUMNS)
    if paramstyle == "qmark":
        marks = ["?"] * n
    elif paramstyle == "numeric_dollar":
        marks = [f"${i + 1}" for i in range(n)]
    elif paramstyle == "numeric":
        marks = [f":{i + 1}" for i in range(n)]
    elif paramstyle == "format":
        marks = ["%s"] * n
    else:  # pragma: no cover - every supported driver is above
        raise RuntimeError(f"unsupported DB-API paramstyle {paramstyle!r}")
    return (
        f"INSERT INTO {TelemetryCall.__tablename__} ({', '.join(_INSERT_COLUMNS)}) "
        f"VALUES ({', '.join(marks)})"
    )


# SQLite's limit on parameters per statement (999 before 3.32)
_SQLITE_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_MULTI_ROWS = _SQLITE_PARAMS // len(_INSERT_COLUMNS)


@functools.lru_cache(maxsize=32)
def multirow_insert_sql(rows: int) -> str:
    """One INSERT of `rows` rows (qmark style)."""
    one = f"({', '.join('?' * len(_INSERT_COLUMNS))})"
    return (
        f"INSERT INTO {TelemetryCall.__tablename__} ({', '.join(_INSERT_COLUMNS)}) "
        f"VALUES {', '.join([one] * rows)}"
    )


def multirow_chunks(n: int, most: int = _MULTI_ROWS) -> list[int]:
    """Sizes of the statements for `n` rows: full ones, then powers of two, so that only a
    few distinct statements exist (each prepared once and cached by the driver)."""
    sizes = [most] * (n // most)
    rest = n % most
    bit = 1 << rest.bit_length()
    while rest:
        bit >>= 1
        if rest & bit:
            sizes.append(bit)
            rest -= bit
    return sizes


class Collector:
    """Ingest and flush for one console process; long-lived, kept in `AppState.extras`."""

    def __init__(self, engine: AsyncEngine, config: TelemetryConfig, live: LiveStore) -> None:
        self.engine = engine
        self.config = config
        self.live = live
        self.redactor = Redactor(config.redact.headers, config.redact.fields)
        self._insert_calls = insert_calls_sql(engine.dialect.paramstyle)
        # SQLite has one writer; a transaction that read first and then writes fails at once
        # (SQLITE_BUSY, no wait) when another one committed meanwhile. Telemetry's writers
        # take turns instead. PostgreSQL needs no such lock.
        self._sqlite = engine.dialect.name == "sqlite"
        self._write_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, taking turns with the other telemetry writers on SQLite."""
        if self._sqlite:
            async with self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn

    async def _insert(self, conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
        if not self._sqlite:
            await conn.exec_driver_sql(self._insert_calls, rows)
            return
        # SQLite: a few statements of many rows each instead of one step per row. The
        # driver gives up the GIL for each step: per row, the event loop's Python work
        # (decoding the next batch) made the insert wait for the GIL thousands of times.
        at = 0
        for size in multirow_chunks(len(rows)):
            params = tuple(chain.from_iterable(rows[at : at + size]))
            await conn.exec_driver_sql(multirow_insert_sql(size), params)
            at += size

    def _capture(self, r: CallRecord, cap: CallCapture) -> str | None:
        policy = self.config.capture.policy_for(r.route)
        # the sample draw happened on the gateway; the console only refuses what the
        # policy can never allow
        if policy.mode == "off" or not should_capture(policy, r.status, r.error, 0.0):
            return None
        limit = self.config.capture.max_body_bytes
        req_type = next((v for n, v in cap.request_headers if n.lower() == "content-type"), "")
        resp_type = next((v for n, v in cap.response_headers if n.lower() == "content-type"), "")
        text: str = json.dumps(
            {
                "request_headers": self.redactor.redact_headers(cap.request_headers),
                "response_headers": self.redactor.redact_headers(cap.response_headers),
                "request_body": self.redactor.redact_body(cap.request_body[:limit], req_type),
                "response_body": self.redactor.redact_body(cap.response_body[:limit], resp_type),
                "truncated": len(cap.request_body) > limit or len(cap.response_body) > limit,
            },
            ensure_ascii=False,
        )
        return text

    async def ingest(self, node: str, batch: Batch) -> tuple[int, bool]:
        """Store `batch`; returns (records accepted, whether it was a duplicate)."""
        started = time.perf_counter()
        stats = self.live.stats
        stats.node_dropped[node] = batch.dropped_total
        stats.node_spool_bytes[node] = batch.spool_bytes
        try:
            async with self.writing() as conn:
                # insert first: a re-sent batch fails on the unique key (IntegrityError below)
                batch_id = await conn.scalar(
                    insert(TelemetryBatch)
                    .values(
                        batch_key=batch.key,
                        node=node,
                        received_at=time.time(),
                        records=len(batch.records),
                        aggregated=False,
                    )
                    .returning(TelemetryBatch.id)
                )
                if batch_id is None:  # pragma: no cover - RETURNING always gives the id
                    raise RuntimeError("the store returned no id for the new batch")
                if batch.records:
                    caps = {
                        i: self._capture(batch.records[i], c) for i, c in batch.captures.items()
                    }
                    rows = call_rows(batch.records, batch_id, caps)
                    await self._insert(conn, rows)
        except IntegrityError:
            # the batch key is stored already: this batch was sent before
            stats.duplicates += 1
            return 0, True
        self.live.add(batch_id, batch.records)
        elapsed = time.perf_counter() - started
        stats.records += len(batch.records)
        stats.batches += 1
        stats.write_seconds_sum += elapsed
        stats.write_seconds_count += 1
        if batch.records:
            stats.last_lag_seconds = max(0.0, time.time() - min(r.time for r in batch.records))
        return len(batch.records), False

    async def flush(self, now: float | None = None) -> int:
        """Write the minutes closed before ``now - grace`` as rollups; returns rows written."""
        now = time.time() if now is None else now
        grace = self.config.minute_grace.total_seconds()
        cutoff = int((now - grace) // 60) * 60
        started = time.perf_counter()
        async with self.live.lock:
            closed, done, partial = self.live.take_closed(cutoff)
            if not closed and not done and not partial:
                return 0
            try:
                async with self.writing() as conn:
                    written = await write_rollups(conn, closed)
                    for chunk in _chunks(done):
                        await conn.execute(
                            update(TelemetryBatch)
                            .where(TelemetryBatch.id.in_(chunk))
                            .values(aggregated=True)
                        )
                    # recovery skips the minutes of partly flushed batches already written
                    for chunk in _chunks(partial):
                        await conn.execute(
                            update(TelemetryBatch)
                            .where(TelemetryBatch.id.in_(chunk))
                            .values(flushed_until=cutoff)
                        )
            except BaseException:
                self.live.put_back(closed, done + partial, cutoff)
                raise
        self.live.stats.flush_seconds_sum += time.perf_counter() - started
        self.live.stats.flush_count += 1
        return written


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + _ID_CHUNK] for i in range(0, len(ids), _ID_CHUNK)]


async def hours_until(conn: AsyncConnection) -> int | None:
    value: int | None = await conn.scalar(
        select(TelemetryState.value).where(TelemetryState.name == HOURS_UNTIL)
    )
    return value


async def write_rollups(conn: AsyncConnection, closed: dict[Key, Aggregate]) -> int:
    """Insert minute rows for `closed`; minutes of hours already rolled up also add to the
    hour rollup, so late records (a replayed spool) are never missing from hour queries."""
    if not closed:
        return 0
    rows = [a.to_row(dim, key, bucket) for (dim, key, bucket), a in closed.items()]
    await conn.execute(insert(TelemetryMinute), rows)
    rolled = await hours_until(conn)
    if rolled is not None:
        late: dict[Key, Aggregate] = defaultdict(Aggregate)
        for (dim, key, bucket), a in closed.items():
            if bucket < rolled:
                late[(dim, key, bucket - bucket % 3600)].merge(a)
        if late:
            await conn.execute(
                insert(TelemetryHour), [a.to_row(d, k, b) for (d, k, b), a in late.items()]
            )
    return len(rows)


async def recover(engine: AsyncEngine, live: LiveStore) -> int:
    """Re-aggregate the records of batches not yet in the rollups; returns how many."""
    count = 0
    async with engine.connect() as conn:
        batches = (
            await conn.execute(
                select(TelemetryBatch.id, TelemetryBatch.flushed_until).where(
                    TelemetryBatch.aggregated.is_(False)
                )
            )
        ).all()
        cols = [getattr(TelemetryCall, "ts" if f == "time" else f) for f in _CALL_COLUMNS]
        for batch_id, flushed_until in batches:
            result = await conn.execute(
                select(*cols).where(
                    TelemetryCall.batch_id == batch_id, TelemetryCall.ts >= flushed_until
                )
            )
            records = [CallRecord(*row) for row in result]
            live.add(batch_id, records)
            count += len(records)
    if count:
        log.info("telemetry: re-aggregated %d record(s) of %d batch(es)", count, len(batches))
    return count


__all__ = ["Collector", "recover", "write_rollups"]

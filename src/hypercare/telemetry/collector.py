"""The console side of shipping: store batches durably, keep live aggregates, flush rollups.

`ingest` writes one batch (its row, its call detail as one block and the calls' lookup
keys, see segments.py) in one transaction, then adds the records to the live aggregates and
hands them to the collector's observers (detection's one-second windows).
Only after that returns is the batch acknowledged, so an acknowledged record is always in
the store. `flush` writes closed minutes as rollup rows and flags their batches aggregated, in one
transaction. `recover` rebuilds the live aggregates of unflagged batches at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hypercare.gateway.records import CallRecord
from hypercare.telemetry import segments
from hypercare.telemetry.aggregate import Aggregate, Key
from hypercare.telemetry.capture import CallCapture, should_capture
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.models import (
    TelemetryBatch,
    TelemetryCallKey,
    TelemetryHour,
    TelemetryMinute,
    TelemetrySegment,
    TelemetrySegmentRoute,
    TelemetryState,
)
from hypercare.telemetry.nodes import VerifiedNodes
from hypercare.telemetry.redact import Redactor
from hypercare.telemetry.wire import Batch

log = logging.getLogger("hypercare.telemetry")

HOURS_UNTIL = "hours_rolled_until"
_ID_CHUNK = 500
_KEYS = TelemetryCallKey.__tablename__
# SQLite's limit on parameters per statement (999 before 3.32); a key row has two
_SQLITE_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_MULTI_ROWS = _SQLITE_PARAMS // 2


@functools.lru_cache(maxsize=32)
def multirow_insert_sql(rows: int) -> str:
    """One INSERT of `rows` key rows (qmark style)."""
    return f"INSERT INTO {_KEYS} (key, ref) VALUES {', '.join(['(?, ?)'] * rows)}"


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


_INSERT_BATCH = insert(TelemetryBatch).returning(TelemetryBatch.id)
_INSERT_SEGMENT = insert(TelemetrySegment)
_INSERT_SEGMENT_ROUTE = insert(TelemetrySegmentRoute)


async def write_block(
    conn: AsyncConnection, batch_id: int, block: segments.Block, *, sqlite: bool
) -> None:
    """Store a batch's call detail: its block row and its calls' lookup keys."""
    # statements without .values() and the row as parameters: compiled once and cached
    # (building a statement around a block's values costs more than running it)
    await conn.execute(
        _INSERT_SEGMENT,
        {
            "batch_id": batch_id,
            "first_ts": block.first_ts,
            "last_ts": block.last_ts,
            "routes": block.routes,
            "consumers": block.consumers,
            "statuses": block.statuses,
            "errors": block.errors,
            "calls": block.calls,
        },
    )
    await conn.execute(
        _INSERT_SEGMENT_ROUTE,
        [
            {
                "batch_id": batch_id,
                "route": part.route,
                "first_ts": block.first_ts,
                "last_ts": block.last_ts,
                "statuses": part.statuses,
                "errors": part.errors,
            }
            for part in block.route_parts
        ],
    )
    keys, refs = segments.key_rows(batch_id, block)
    if not sqlite:
        # PostgreSQL: two arrays in one statement instead of a row of parameters per key
        await conn.exec_driver_sql(
            f"INSERT INTO {_KEYS} (key, ref) SELECT * FROM unnest($1::bigint[], $2::bigint[])",
            (keys, refs),
        )
        return
    # SQLite: a few statements of many rows each; the driver gives up the GIL for each
    # step, so one step per row would make the insert wait for the GIL thousands of times
    # key, ref, key, ref, ... interleaved by two C-level slice assignments
    flat: list[int] = [0] * (2 * len(keys))
    flat[::2] = keys
    flat[1::2] = refs
    at = 0
    for size in multirow_chunks(len(keys)):
        await conn.exec_driver_sql(multirow_insert_sql(size), tuple(flat[at : at + 2 * size]))
        at += 2 * size


class Collector:
    """Ingest and flush for one console process; long-lived, kept in `AppState.runtimes`."""

    def __init__(self, engine: AsyncEngine, config: TelemetryConfig, live: LiveStore) -> None:
        self.engine = engine
        self.config = config
        self.live = live
        self.redactor = Redactor(config.redact.headers, config.redact.fields)
        self.nodes = VerifiedNodes()
        # called with the records of every newly stored batch, after the live aggregates got
        # them (detection's live windows): one place feeds every consumer of ingested calls
        self.observers: list[Callable[[Sequence[CallRecord]], None]] = []
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

    def _capture(self, r: CallRecord, cap: CallCapture) -> dict[str, Any] | None:
        """The capture as stored, or None: its record is stored either way (a capture that
        cannot be redacted is dropped, never stored as it came)."""
        try:
            return self._redacted(r, cap)
        except Exception as exc:
            # the exception's text could quote captured bytes: only its type is logged
            log.error("capture of call %s dropped (%s)", r.request_id, type(exc).__name__)
            return None

    def _redacted(self, r: CallRecord, cap: CallCapture) -> dict[str, Any] | None:
        """The policy checked again and everything redacted again (a gateway worker
        already redacted it; a node of another version may not have)."""
        policy = self.config.capture.policy_for(r.route)
        # the sample draw happened on the gateway; the console only refuses what the
        # policy can never allow
        if policy.mode == "off" or not should_capture(policy, r.status, r.error, 0.0):
            return None
        # a worker keeps max_body_bytes of each body, and its redacted text can be longer
        # (the marker, JSON spacing); raw bodies from a node that did not redact are cut to
        # max_body_bytes. Anything beyond is cut here.
        limit = self.config.capture.max_body_bytes
        if cap.redacted:
            limit = 3 * limit + 1024
        req_type = next((v for n, v in cap.request_headers if n.lower() == "content-type"), "")
        resp_type = next((v for n, v in cap.response_headers if n.lower() == "content-type"), "")
        req_cut = cap.request_truncated or len(cap.request_body) > limit
        resp_cut = cap.response_truncated or len(cap.response_body) > limit
        redactor = self.redactor
        return {
            "query": redactor.redact_query(cap.query[:limit]) or None,
            "request_headers": redactor.redact_headers(cap.request_headers),
            "response_headers": redactor.redact_headers(cap.response_headers),
            "request_body": redactor.redact_body(
                cap.request_body[:limit], req_type, truncated=req_cut
            ),
            "response_body": redactor.redact_body(
                cap.response_body[:limit], resp_type, truncated=resp_cut
            ),
            "request_truncated": req_cut,
            "response_truncated": resp_cut,
            "truncated": req_cut or resp_cut,
        }

    async def ingest(self, node: str, batch: Batch) -> tuple[int, bool]:
        """Store `batch`; returns (records accepted, whether it was a duplicate)."""
        started = time.perf_counter()
        stats = self.live.stats
        stats.node_dropped[node] = batch.dropped_total
        stats.node_spool_bytes[node] = batch.spool_bytes
        for source, total, sample, reason in batch.unparsed:
            key = f"{node} {source}"
            known = stats.unparsed.sources.get(key)
            if known is None or known.total != total:
                stats.unparsed.set(key, total, sample, reason, time.time())
        columns: list[tuple[Any, ...]] | None = None
        try:
            async with self.writing() as conn:
                # insert first: a re-sent batch fails on the unique key (IntegrityError below)
                batch_id = await conn.scalar(
                    _INSERT_BATCH,
                    {
                        "batch_key": batch.key,
                        "node": node,
                        "received_at": time.time(),
                        "records": len(batch.records),
                        "aggregated": False,
                    },
                )
                if batch_id is None:  # pragma: no cover - RETURNING always gives the id
                    raise RuntimeError("the store returned no id for the new batch")
                if batch.records:
                    # the records' columns, shared by the block and the live aggregates
                    columns = list(zip(*batch.records))  # noqa: B905 - records are uniform
                    caps = {
                        i: cap
                        for i, c in batch.captures.items()
                        if (cap := self._capture(batch.records[i], c)) is not None
                    }
                    block = segments.build(batch.records, caps, columns)
                    await write_block(conn, batch_id, block, sqlite=self._sqlite)
        except IntegrityError:
            # the batch key is stored already: this batch was sent before
            stats.duplicates += 1
            return 0, True
        self.live.add(batch_id, batch.records, columns)
        if batch.records:
            for observe in self.observers:
                try:
                    observe(batch.records)
                except Exception:
                    # the batch is stored and acknowledged whatever an observer does
                    log.exception("telemetry: a record observer failed")
        elapsed = time.perf_counter() - started
        stats.records += len(batch.records)
        stats.batches += 1
        stats.write_seconds_sum += elapsed
        stats.write_seconds_count += 1
        if batch.records:
            first = min(columns[0]) if columns else min(r.time for r in batch.records)  # time
            stats.last_lag_seconds = max(0.0, time.time() - first)
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
        for batch_id, flushed_until in batches:
            calls = await conn.scalar(
                select(TelemetrySegment.calls).where(TelemetrySegment.batch_id == batch_id)
            )
            rows = segments.loads(calls) if calls is not None else []
            records = [segments.record_of(r) for r in rows if r[0] >= flushed_until]
            live.add(batch_id, records)
            count += len(records)
    if count:
        log.info("telemetry: re-aggregated %d record(s) of %d batch(es)", count, len(batches))
    return count


__all__ = ["Collector", "recover", "write_rollups"]

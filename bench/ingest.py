"""Ingest benchmark: records/s the telemetry collector stores (call detail without bodies,
live aggregates and their minute rollups), on SQLite and on PostgreSQL.

    .venv/bin/python bench/ingest.py [--records 200000] [--batch 2000] [--postgres URL]

Each batch is decoded from the wire format (as the ingest endpoint does), stored in one
transaction, aggregated in memory; rollups are flushed at the end and included in the time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from hypercare.gateway.records import CallRecord
from hypercare.runtime import settle_gc
from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate
from hypercare.telemetry.collector import Collector
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.wire import decode_batch, encode_batch


def records(n: int, start: float, routes: int = 50, spacing: float = 0.001) -> list[CallRecord]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        status = 200 if rng.random() < 0.95 else rng.choice((401, 404, 429, 500, 503))
        total = rng.lognormvariate(3, 1)
        out.append(
            CallRecord(
                time=start + i * spacing,
                route=f"route-{i % routes}",
                consumer=f"consumer-{i % 20}",
                method="GET",
                path_template="/api/items/{id}",
                path=f"/api/items/{i}",
                status=status,
                request_bytes=120,
                response_bytes=2400,
                target=f"10.0.0.{i % 4}:8080",
                gateway_ms=0.15,
                upstream_ms=total - 0.15,
                total_ms=total,
                error="timeout" if status == 503 else "",
                client_ip="10.1.2.3",
                request_id=uuid.uuid4().hex,
                trace_id=uuid.uuid4().hex,
                upstream="items",
                user_agent="bench/1.0",
            )
        )
    return out


async def run(
    url: str, n: int, batch: int, schema: str | None, concurrency: int, spacing: float
) -> float:
    kwargs = {"connect_args": {"server_settings": {"search_path": schema}}} if schema else {}
    engine = create_engine(url, **kwargs)
    await migrate(engine)
    collector = Collector(engine, TelemetryConfig(), LiveStore())
    recs = records(n, time.time() - 3600, spacing=spacing)
    bodies = [
        encode_batch(uuid.uuid4().hex, recs[i : i + batch], sent_at=time.time())
        for i in range(0, n, batch)
    ]
    queue = list(reversed(bodies))
    settle_gc()  # as the console does once it has started

    async def worker() -> None:
        # like concurrent ingest requests: one decodes while another's insert runs
        while queue:
            await collector.ingest("bench", decode_batch(queue.pop()))

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await collector.flush(time.time() + 3600)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    await engine.dispose()
    # CPU seconds of this process (all threads) per record: what an idle machine would need
    print(f"  ({cpu / n * 1e6:.1f} µs CPU per record in this process)")
    return n / elapsed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--concurrency", type=int, default=1, help="batches in flight at once")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument(
        "--record-rate",
        type=float,
        default=1000.0,
        help="records per second of record time (their timestamps' spacing); 50000 puts as "
        "many records in each second as a gateway fleet serving 50,000 req/s would",
    )
    args = ap.parse_args()
    spacing = 1 / args.record_rate
    what = f"{args.records:,} records, batch {args.batch}, {args.concurrency} in flight"
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        rate = await run(url, args.records, args.batch, None, args.concurrency, spacing)
        print(f"sqlite:     {rate:10,.0f} records/s ({what})")
    if not args.skip_postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            rate = await run(
                args.postgres, args.records, args.batch, schema, args.concurrency, spacing
            )
            print(f"postgresql: {rate:10,.0f} records/s ({what})")
        finally:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())

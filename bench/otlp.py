"""OTLP ingest benchmark: spans/s one console core turns into stored calls, and CPU per span
against the native path (the gateway's shipped record batches), measured in the same run.

    .venv/bin/python bench/otlp.py [--spans 100000] [--batch 2000] [--repeat 3] [--postgres URL]

Both paths get the same calls: the native one as wire batches (`encode_batch`), the OTLP
one as gzip-compressed protobuf export requests of server spans with the usual semantic-
convention attributes (what an OpenTelemetry Collector's otlphttp exporter sends). Each path
is measured twice: decoding alone (bytes to `CallRecord`s: the part that differs) and the
whole ingest (decode, then `Collector.ingest` into a fresh store: batch row, call block,
keys, live aggregates; rollups flushed at the end). CPU is this process's CPU time, one
thread: spans per CPU second is what one console core sustains. Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import text

from hypercare.gateway.records import CallRecord
from hypercare.runtime import settle_gc
from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate
from hypercare.telemetry import otlp
from hypercare.telemetry.collector import Collector
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.external import ExternalRouteConfig, ExternalRoutes
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.wire import Batch, decode_batch, encode_batch

ROUTES = 50


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def exports(n: int, batch: int, start: float) -> tuple[list[bytes], list[list[CallRecord]]]:
    """`n` calls as OTLP export bodies (gzip protobuf) and as the records they become."""
    rng = random.Random(1)
    routes = ExternalRoutes.from_config(
        [
            ExternalRouteConfig.model_validate(
                {"name": f"route-{i}", "match": {"path": f"/api/r{i}/{{id}}", "methods": ["GET"]}}
            )
            for i in range(ROUTES)
        ]
    )
    bodies, natives = [], []
    for at in range(0, n, batch):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(
            [_kv("service.name", "items"), _kv("telemetry.sdk.language", "python")]
        )
        spans = rs.scope_spans.add().spans
        for i in range(at, min(at + batch, n)):
            status = 200 if rng.random() < 0.95 else rng.choice((401, 404, 429, 500, 503))
            t0 = int((start + i * 0.001) * 1e9)
            span = Span(
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                name="GET /api/r/{id}",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=t0,
                end_time_unix_nano=t0 + int(rng.lognormvariate(3, 1) * 1e6),
                attributes=[
                    _kv("http.request.method", "GET"),
                    _kv("url.path", f"/api/r{i % ROUTES}/{i}"),
                    _kv("http.route", f"/api/r{i % ROUTES}/{{id}}"),
                    _kv("url.scheme", "https"),
                    _kv("server.address", "api.example.com"),
                    _kv("http.response.status_code", status),
                    _kv("client.address", "10.1.2.3"),
                    _kv("user_agent.original", "bench/1.0"),
                    _kv("enduser.id", f"consumer-{i % 20}"),
                ],
            )
            if status >= 500:
                span.status.code = 2
            spans.append(span)
        bodies.append(gzip.compress(req.SerializeToString(), 6))
        natives.append(otlp.calls_of_traces(req, routes, "enduser.id").records)
    return bodies, natives


def otlp_decoder(routes: ExternalRoutes) -> Callable[[bytes], list[CallRecord]]:
    """What the receiver does with an export body: `otlp.convert` (gunzip, the batch key's
    hash, decoding, spans to calls)."""

    def decode(body: bytes) -> list[CallRecord]:
        return otlp.convert(
            "traces",
            body,
            encoding="gzip",
            kind=otlp.PROTOBUF,
            routes=routes,
            consumer_key="enduser.id",
            max_body=64 << 20,
        ).records

    return decode


async def ingest(
    url: str, schema: str | None, bodies: list[bytes], decode: Callable[[bytes], list[CallRecord]]
) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to decode and store every body, rollups flushed."""
    kwargs = {"connect_args": {"server_settings": {"search_path": schema}}} if schema else {}
    engine = create_engine(url, **kwargs)
    await migrate(engine)
    collector = Collector(engine, TelemetryConfig(), LiveStore())
    settle_gc()
    started, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        await collector.ingest(
            "bench", Batch(uuid.uuid4().hex, time.time(), 0, 0, decode(body), {})
        )
    await collector.flush(time.time() + 3600)
    result = time.perf_counter() - started, time.process_time() - cpu
    await engine.dispose()
    return result


def decode_cpu(bodies: list[bytes], decode: Callable[[bytes], list[CallRecord]]) -> float:
    settle_gc()
    cpu = time.process_time()
    for body in bodies:
        decode(body)
    return time.process_time() - cpu


async def fresh_store(
    pg: str | None, go: Callable[[str, str | None], Awaitable[tuple[float, float]]]
) -> tuple[float, float]:
    if pg is None:
        with tempfile.TemporaryDirectory() as tmp:
            return await go(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", None)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        return await go(pg, schema)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=2000, help="spans per export request")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    n = args.spans
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {n:,} calls, "
        f"{args.batch} per request, median of {args.repeat}"
    )
    bodies, records = exports(n, args.batch, time.time() - 3600)
    wire = [encode_batch(uuid.uuid4().hex, r, sent_at=time.time()) for r in records]
    print(
        f"request bytes per call: OTLP gzip protobuf {sum(map(len, bodies)) / n:.0f}, "
        f"native JSON {sum(map(len, wire)) / n:.0f}"
    )
    routes = ExternalRoutes.from_config(
        [
            ExternalRouteConfig.model_validate(
                {"name": f"route-{i}", "match": {"path": f"/api/r{i}/{{id}}", "methods": ["GET"]}}
            )
            for i in range(ROUTES)
        ]
    )
    decode_otlp = otlp_decoder(routes)

    def decode_native(body: bytes) -> list[CallRecord]:
        return decode_batch(body).records

    o = statistics.median(decode_cpu(bodies, decode_otlp) for _ in range(args.repeat))
    w = statistics.median(decode_cpu(wire, decode_native) for _ in range(args.repeat))
    print(
        f"decode only:  OTLP {n / o:10,.0f} spans/CPU-s ({o / n * 1e6:5.1f} µs/span)   "
        f"native {n / w:10,.0f} records/CPU-s ({w / n * 1e6:5.1f} µs/record)   "
        f"ratio {o / w:.2f}x CPU"
    )
    stores = [("sqlite", None)]
    if not args.skip_postgres:
        stores.append(("postgresql", args.postgres))
    for name, pg in stores:
        runs_o, runs_w = [], []
        for _ in range(args.repeat):
            runs_o.append(await fresh_store(pg, lambda u, s: ingest(u, s, bodies, decode_otlp)))
            runs_w.append(await fresh_store(pg, lambda u, s: ingest(u, s, wire, decode_native)))
        wall_o = statistics.median(r[0] for r in runs_o)
        cpu_o = statistics.median(r[1] for r in runs_o)
        wall_w = statistics.median(r[0] for r in runs_w)
        cpu_w = statistics.median(r[1] for r in runs_w)
        print(
            f"{name:10} ingest: OTLP {n / cpu_o:10,.0f} spans/CPU-s ({cpu_o / n * 1e6:5.1f} µs, "
            f"{n / wall_o:9,.0f}/s wall)   native {n / cpu_w:10,.0f} records/CPU-s "
            f"({cpu_w / n * 1e6:5.1f} µs, {n / wall_w:9,.0f}/s wall)   "
            f"ratio {cpu_o / cpu_w:.2f}x CPU"
        )


if __name__ == "__main__":
    asyncio.run(main())

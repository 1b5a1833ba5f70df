"""The fast read paths of analytics queries give what the histogram merge gives: stored
per-minute quantiles, the histogram cache, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.gateway.records import CallRecord
from hypercare.store.db import session_factory
from hypercare.telemetry import query
from hypercare.telemetry.collector import Collector
from hypercare.telemetry.compaction import rollup_hours
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.histcache import HistogramCache
from hypercare.telemetry.histogram import Histogram, bucket_of
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.models import TelemetryMinute
from hypercare.telemetry.wire import Batch
from tests.telemetry.factory import random_records

HOUR = 3600


def _batch(records: list[CallRecord]) -> Batch:
    return Batch(uuid.uuid4().hex, time.time(), 0, 0, records, {})


async def _series(c: Collector, metric: str, start: float, end: float) -> list[float | None]:
    async with session_factory(c.engine)() as s:
        points = await query.timeseries(
            s, c.live, dim="route", key="route-0", metric_name=metric, start=start, end=end, step=60
        )
    return [v for _, v in points]


def _expected(records: list[CallRecord], start: int, minutes: int, q: float) -> list[float | None]:
    out: list[float | None] = []
    for m in range(minutes):
        h = Histogram.of(
            r.total_ms
            for r in records
            if r.route == "route-0" and start + m * 60 <= r.time < start + (m + 1) * 60
        )
        out.append(h.quantile(q) if h.counts else None)
    return out


async def test_percentile_series_from_stored_quantiles_equal_the_histogram_merge(
    engine: AsyncEngine,
) -> None:
    c = Collector(engine, TelemetryConfig(), LiveStore())
    start = (int(time.time()) // HOUR - 2) * HOUR
    recs = random_records(2000, start, 600, routes=2)
    await c.ingest("node-a", _batch(recs))
    await c.flush(now=start + HOUR)
    want = {q: _expected(recs, start, 10, q) for q in (0.5, 0.95, 0.99)}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert await _series(c, name, start, start + 600) == want[q]

    # late records for minute 3 (another row for the same minute), and records still live
    # for minute 5: those minutes are merged from histograms, the rest read as stored
    late = random_records(300, start + 180, 60, routes=1)
    live = random_records(300, start + 300, 60, routes=1)
    await c.ingest("node-a", _batch(late))
    await c.flush(now=start + HOUR)
    await c.ingest("node-a", _batch(live))
    everything = recs + late + live
    assert await _series(c, "p95", start, start + 600) == _expected(everything, start, 10, 0.95)

    # rows written before quantiles were stored (NULL) are merged from their histograms
    async with engine.begin() as conn:
        await conn.execute(update(TelemetryMinute).values(p50=None, p95=None, p99=None))
    assert await _series(c, "p99", start, start + 600) == _expected(everything, start, 10, 0.99)


async def test_queries_answer_the_same_from_the_histogram_cache(engine: AsyncEngine) -> None:
    c = Collector(engine, TelemetryConfig(), LiveStore())
    start = (int(time.time()) // HOUR - 3) * HOUR
    await c.ingest("node-a", _batch(random_records(3000, start, 2 * HOUR, routes=3)))
    await c.flush(now=start + 3 * HOUR)

    async def routes() -> list[query.RouteSummary]:
        async with session_factory(engine)() as s:
            return await query.summary(s, c.live, start=start, end=start + 2 * HOUR)

    cache = c.live.histograms
    cold = await routes()
    assert cache.misses > 0 and cache.hits == 0 and len(cache) > 0
    misses = cache.misses
    assert await routes() == cold
    assert cache.misses == misses and cache.hits > 0
    # with no cache at all, the same answer
    c.live.histograms = HistogramCache(0)
    assert await routes() == cold and len(c.live.histograms) == 0


def test_cache_evicts_least_recently_used_by_bytes_and_checks_the_bucket() -> None:
    big = (0, 100, (1 << 6400) - 1)  # one 100-bucket run: about 1 KB
    cache = HistogramCache(max_bytes=2500)  # room for two of them
    cache.put(("m", 1, "total"), 60, big)
    assert cache.get(("m", 1, "total"), 60) == big
    # the same row id with another bucket (a reused id): a miss
    assert cache.get(("m", 1, "total"), 120) is None
    cache.put(("m", 2, "total"), 60, big)
    cache.get(("m", 1, "total"), 60)  # 1 is now the most recently used
    cache.put(("m", 3, "total"), 60, big)
    assert cache.bytes <= cache.max_bytes
    assert cache.get(("m", 2, "total"), 60) is None
    assert cache.get(("m", 1, "total"), 60) == big
    assert cache.get(("m", 3, "total"), 60) == big


async def test_slo_counts_equal_the_merged_aggregates(engine: AsyncEngine) -> None:
    """Good calls under a threshold read row by row (`slo_counts`) equal `count_upto` of
    `collect`'s merged histograms: rolled hours, minutes, late rows and live data; from the
    store and then from the cache."""
    c = Collector(engine, TelemetryConfig(), LiveStore())
    start = (int(time.time()) // HOUR - 4) * HOUR
    await c.ingest("node-a", _batch(random_records(3000, start, 3 * HOUR, routes=3)))
    await c.flush(now=start + 4 * HOUR)
    await rollup_hours(c, now=start + 4 * HOUR)
    # late rows for a rolled hour, and calls still live in the last hour
    await c.ingest("node-a", _batch(random_records(200, start + 600, 60, routes=2, seed=2)))
    await c.flush(now=start + 4 * HOUR)
    await c.ingest("node-a", _batch(random_records(300, start + 3 * HOUR, 600, routes=3, seed=3)))
    limits = {"route-0": [bucket_of(50.0), bucket_of(300.0)], "route-1": [bucket_of(120.0)]}
    keys = ["route-0", "route-1", "route-2"]
    shared = c.live.histograms
    for step in (HOUR, 60):
        c.live.histograms = shared
        async with session_factory(engine)() as s:
            aggs = await query.collect(
                s, c.live, dim="route", start=start, end=start + 4 * HOUR, step=step
            )
            want = {
                at: (
                    a.requests,
                    a.c4xx,
                    a.c5xx,
                    {n: a.hist_total.count_upto(n) for n in limits.get(at[0], [])},
                )
                for at, a in aggs.items()
            }
            for cache in (shared, shared, HistogramCache(0)):
                # rows missing from the cache, then from it, then with no cache at all
                c.live.histograms = cache
                got = await query.slo_counts(
                    s,
                    c.live,
                    dim="route",
                    start=start,
                    end=start + 4 * HOUR,
                    step=step,
                    keys=keys,
                    limits=limits,
                )
                assert {at: (g.requests, g.c4xx, g.c5xx, g.upto) for at, g in got.items()} == want


async def test_rates_start_at_the_first_minute_even_once_its_hour_is_rolled_up(
    engine: AsyncEngine,
) -> None:
    """Traffic that began two minutes before the top of an hour: once that hour is rolled up
    its hour row's bucket is the hour's start, yet the observed time (and so req/s) still
    starts at the first recorded minute; only when the minutes are gone does the hour row
    mark the start."""
    c = Collector(engine, TelemetryConfig(), LiveStore())
    top = (int(time.time()) // HOUR - 2) * HOUR
    first = top - 120
    recs = random_records(40, first, 240, routes=1)
    await c.ingest("node-a", _batch(recs))
    await c.flush(now=top + 600)
    assert await rollup_hours(c, now=top + 600) >= 1
    async with session_factory(engine)() as s:
        assert await query.first_observed(s, c.live) == first
        rows = await query.summary(s, c.live, start=top - HOUR, end=top + 60, now=top + 60)
    want = sum(1 for r in recs if r.time < top + 60)
    assert [(r.requests, r.rps) for r in rows] == [(want, want / 180)]  # not want / 3660
    async with engine.begin() as conn:
        await conn.execute(delete(TelemetryMinute).where(TelemetryMinute.bucket < top))
    async with session_factory(engine)() as s:
        assert await query.first_observed(s, c.live) == top - HOUR

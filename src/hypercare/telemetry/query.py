"""In-process read API over stored rollups plus the live (unflushed) minutes.

Used by the analytics endpoints and meant for other packages (alert rules evaluated every
few seconds): every function takes a session and the `LiveStore` from
the console's collector
(``telemetry.jobs.live_of(state)``). Ranges are ``[start, end)`` in Unix seconds,
widened to whole minutes. Whole hours already rolled up are read from the hour table,
the rest from minutes, the newest from memory; histograms of all of them merge exactly.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import InvalidInput
from hypercare.telemetry.aggregate import Aggregate
from hypercare.telemetry.collector import HOURS_UNTIL
from hypercare.telemetry.config import METRICS
from hypercare.telemetry.histcache import HistogramCache, Packed
from hypercare.telemetry.histogram import Dense, Histogram, decode_run, unpack_dumped
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.models import (
    COUNTER_COLUMNS,
    DIMENSIONS,
    RouteSummary,
    TelemetryHour,
    TelemetryMinute,
    TelemetryState,
)

_HIST_FOR = {
    "p50": ("total",),
    "p95": ("total",),
    "p99": ("total",),
    "upstream_p95": ("upstream",),
    "gateway_p95": ("gateway",),
}
_LATENCY = frozenset(_HIST_FOR)
# id, key, bucket, then the counters in the order of COUNTER_COLUMNS (requests ... errors):
# `collect` reads the rows by position
_ROLLUP_COLUMNS = ("id", "key", "bucket", *COUNTER_COLUMNS[1:])


def check_dim(dim: str) -> None:
    if dim not in DIMENSIONS:
        raise InvalidInput(f"unknown dimension {dim!r}; use one of {', '.join(DIMENSIONS)}")


def align(start: float, end: float) -> tuple[int, int]:
    s = int(start // 60) * 60
    e = int(math.ceil(end / 60) * 60)
    if e <= s:
        raise InvalidInput("'to' must be after 'from'", details={"from": start, "to": end})
    return s, e


async def _rolled_until(session: AsyncSession) -> int:
    value = await session.scalar(
        select(TelemetryState.value).where(TelemetryState.name == HOURS_UNTIL)
    )
    return int(value or 0)


async def _read(
    session: AsyncSession,
    table: type[TelemetryMinute] | type[TelemetryHour],
    dim: str,
    start: int,
    end: int,
    key: str | None,
) -> list[Any]:
    """The counters of the rows (no histograms: those come from `_histograms`)."""
    cols = [getattr(table, c) for c in _ROLLUP_COLUMNS]
    stmt = select(*cols).where(table.dim == dim, table.bucket >= start, table.bucket < end)
    if key is not None:
        stmt = stmt.where(table.key == key)
    # Core execution (no ORM result processing): thousands of rows per request
    conn = await session.connection()
    return list((await conn.execute(stmt)).all())


_EMPTY: Packed = (0, 0, 0)
_ID_CHUNK = 500


async def _histograms(
    session: AsyncSession,
    cache: HistogramCache,
    table: type[TelemetryMinute] | type[TelemetryHour],
    rows: list[Any],
    histograms: tuple[str, ...],
) -> dict[tuple[int, str], Packed]:
    """The packed histograms of `rows` (from `_read`), from the cache or else the store."""
    name = table.__tablename__
    found: dict[tuple[int, str], Packed] = {}
    missing: dict[int, int] = {}  # row id -> bucket
    for row in rows:
        row_id, bucket = row[0], row[2]
        for h in histograms:
            packed = cache.get((name, row_id, h), bucket)
            if packed is None:
                missing[row_id] = bucket
            else:
                found[(row_id, h)] = packed
    ids = list(missing)
    cols = [getattr(table, f"hist_{h}") for h in histograms]
    conn = await session.connection()
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        result = await conn.execute(select(table.id, *cols).where(table.id.in_(chunk)))
        for row_id, *texts in result.all():
            for h, text in zip(histograms, texts, strict=True):
                packed = unpack_dumped(text) if text else _EMPTY
                cache.put((name, row_id, h), missing[row_id], packed)
                found[(row_id, h)] = packed
    return found


async def collect(
    session: AsyncSession,
    live: LiveStore,
    *,
    dim: str,
    start: float,
    end: float,
    key: str | None = None,
    step: int | None = None,
    histograms: tuple[str, ...] = ("total",),
) -> dict[tuple[str, int], Aggregate]:
    """Merged aggregates per (key, step start) for [start, end); one step when `step` is
    None. Whole hours come from hour rollups when the step allows it."""
    check_dim(dim)
    s, e = align(start, end)
    width = step or (e - s)
    use_hours = step is None or (step % 3600 == 0 and s % 3600 == 0)
    sources: list[tuple[Any, int, int]] = []
    if use_hours:
        rolled = await _rolled_until(session)
        hs = int(math.ceil(s / 3600) * 3600)
        he = min(e - e % 3600, rolled)
        if hs < he:
            sources = [(TelemetryMinute, s, hs), (TelemetryHour, hs, he), (TelemetryMinute, he, e)]
    if not sources:
        sources = [(TelemetryMinute, s, e)]
    out: dict[tuple[str, int], Aggregate] = {}
    dense: dict[tuple[str, int, str], Dense] = {}

    def slot(k: str, bucket: int) -> tuple[str, int]:
        at = (k, s + (bucket - s) // width * width)
        if at not in out:
            out[at] = Aggregate()
        return at

    async with live.lock:
        for table, a, b in sources:
            if a >= b:
                continue
            rows = await _read(session, table, dim, a, b, key)
            packed = await _histograms(session, live.histograms, table, rows, histograms)
            for row in rows:
                # plain tuple indexing (the order of _ROLLUP_COLUMNS): this loop runs once
                # per stored row, thousands of times per request
                at = (row[1], s + (row[2] - s) // width * width)
                agg = out.get(at)
                if agg is None:
                    agg = out[at] = Aggregate()
                agg.requests += row[3]
                agg.c4xx += row[4]
                agg.c5xx += row[5]
                agg.auth_failures += row[6]
                agg.rate_limited += row[7]
                agg.upstream_errors += row[8]
                agg.bytes_in += row[9]
                agg.bytes_out += row[10]
                if row[11] != "{}":
                    errors = agg.errors
                    for err, n in json.loads(row[11]).items():
                        errors[err] = errors.get(err, 0) + n
                for h in histograms:
                    p = packed[(row[0], h)]
                    if p[2]:
                        d = dense.get((*at, h))
                        if d is None:
                            d = dense[(*at, h)] = Dense()
                        d.add_packed(*p)
        for lk in live.select(dim, s, e, key):
            out[slot(lk[1], lk[2])].merge(live.pending[lk])
    for (name, start_at, h), d in dense.items():
        agg = out[(name, start_at)]
        attr = f"hist_{h}"
        mine: Histogram = getattr(agg, attr)
        d.add_counts(mine.counts)  # live data of the same step
        setattr(agg, attr, d.view())
    return out


# --- SLO counts: good/bad calls without building aggregates or merged histograms -------------


@dataclass(slots=True)
class SloCounts:
    """The calls of one key in one step: counters, and per latency bucket limit the calls in
    buckets up to it (`Histogram.count_upto` of the merged histogram, summed row by row)."""

    requests: int = 0
    c4xx: int = 0
    c5xx: int = 0
    upto: dict[int, int] = field(default_factory=dict)


_KEYS_IN = 500  # filter the counter sums by key up to this many keys (else read every key)


async def _sources(session: AsyncSession, s: int, e: int, step: int | None) -> list[Any]:
    """(table, start, end) to read for [s, e): whole rolled hours from the hour rollups
    where `step` allows it, the rest from minutes (as `collect` reads them)."""
    if step is None or (step % 3600 == 0 and s % 3600 == 0):
        rolled = await _rolled_until(session)
        hs = int(math.ceil(s / 3600) * 3600)
        he = min(e - e % 3600, rolled)
        if hs < he:
            return [(TelemetryMinute, s, hs), (TelemetryHour, hs, he), (TelemetryMinute, he, e)]
    return [(TelemetryMinute, s, e)]


def _upto(lo: int, run: Sequence[int], limit: int) -> int:
    """Calls in buckets up to `limit` of a run of counts from bucket `lo`."""
    return 0 if limit < lo else sum(run[: limit - lo + 1])


async def slo_counts(
    session: AsyncSession,
    live: LiveStore,
    *,
    dim: str,
    start: float,
    end: float,
    step: int,
    keys: Collection[str],
    limits: Mapping[str, Collection[int]],
) -> dict[tuple[str, int], SloCounts]:
    """Per (key, step start) of [start, end): the counters availability SLOs need, summed in
    SQL, and for the keys in `limits` the calls up to each bucket limit, summed straight
    from each row's stored run of counts (no merged histogram). The same numbers as
    `collect` and `count_upto` give; a fraction of the work. Per-row sums are kept in the
    live store's histogram cache (one small entry per row and limit)."""
    check_dim(dim)
    s, e = align(start, end)
    wanted = set(keys) | set(limits)
    out: dict[tuple[str, int], SloCounts] = {}
    cache = live.histograms
    conn = await session.connection()
    async with live.lock:
        for table, a, b in await _sources(session, s, e, step):
            if a >= b:
                continue
            name = table.__tablename__
            # summed per bucket (rows of late data are one group); buckets into steps here
            stmt = select(
                table.key,
                table.bucket,
                func.sum(table.requests),
                func.sum(table.c4xx),
                func.sum(table.c5xx),
            ).where(table.dim == dim, table.bucket >= a, table.bucket < b)
            if len(wanted) <= _KEYS_IN:
                stmt = stmt.where(table.key.in_(sorted(wanted)))
            for k, bucket, requests, c4xx, c5xx in (
                await conn.execute(stmt.group_by(table.key, table.bucket))
            ).all():
                at = (k, s + (bucket - s) // step * step)
                c = out.get(at)
                if c is None:
                    c = out[at] = SloCounts()
                c.requests += int(requests or 0)
                c.c4xx += int(c4xx or 0)
                c.c5xx += int(c5xx or 0)
            if not limits:
                continue
            # an empty cache (a fresh store: the CLI) misses every row: read the texts at once
            cold = len(cache) == 0
            rows = (
                await conn.execute(
                    select(
                        table.id,
                        table.key,
                        table.bucket,
                        table.hist_total if cold else null(),
                    ).where(
                        table.dim == dim,
                        table.bucket >= a,
                        table.bucket < b,
                        table.key.in_(sorted(limits)),
                    )
                )
            ).all()
            texts: list[tuple[int, str, int, str | None]] = []
            missing: dict[int, tuple[str, int]] = {}
            for row_id, k, bucket, text in rows:
                if cold:
                    texts.append((row_id, k, bucket, text))
                    continue
                hits = [cache.get((name, row_id, f"total<={lim}"), bucket) for lim in limits[k]]
                if None in hits:
                    missing[row_id] = (k, bucket)
                    continue
                upto = out[(k, s + (bucket - s) // step * step)].upto
                for limit, hit in zip(limits[k], hits, strict=True):
                    upto[limit] = upto.get(limit, 0) + hit[2]  # type: ignore[index]
            ids = list(missing)
            for i in range(0, len(ids), _ID_CHUNK):
                chunk = ids[i : i + _ID_CHUNK]
                result = await conn.execute(
                    select(table.id, table.hist_total).where(table.id.in_(chunk))
                )
                texts.extend((row_id, *missing[row_id], text) for row_id, text in result.all())
            for row_id, k, bucket, text in texts:
                lo, run = decode_run(text) if text else (0, array("I"))
                upto = out[(k, s + (bucket - s) // step * step)].upto
                for limit in limits[k]:
                    n = _upto(lo, run, limit)
                    # a row's calls up to the limit, as a one-bucket packed histogram
                    cache.put((name, row_id, f"total<={limit}"), bucket, (limit, 1, n))
                    upto[limit] = upto.get(limit, 0) + n
        for lk in live.select(dim, s, e, None):
            agg = live.pending[lk]
            k = lk[1]
            if k not in wanted:
                continue
            at = (k, s + (lk[2] - s) // step * step)
            c = out.get(at)
            if c is None:
                c = out[at] = SloCounts()
            c.requests += agg.requests
            c.c4xx += agg.c4xx
            c.c5xx += agg.c5xx
            for limit in limits.get(k, ()):
                c.upto[limit] = c.upto.get(limit, 0) + agg.hist_total.count_upto(limit)
    return out


def metric(agg: Aggregate | None, name: str, seconds: float) -> float | None:
    """One metric of an aggregate; None where it has no value (no calls, no latency)."""
    if agg is None or agg.requests == 0:
        return None if name in _LATENCY or name == "error_rate" else 0.0
    if name == "requests":
        return float(agg.requests)
    if name == "rps":
        return agg.requests / seconds if seconds > 0 else None
    if name == "error_rate":
        return agg.c5xx / agg.requests
    if name == "5xx":
        return float(agg.c5xx)
    if name == "4xx":
        return float(agg.c4xx)
    if name in ("p50", "p95", "p99"):
        return agg.hist_total.quantile(int(name[1:]) / 100)
    if name == "upstream_p95":
        return agg.hist_upstream.quantile(0.95)
    if name == "gateway_p95":
        return agg.hist_gateway.quantile(0.95)
    if name == "auth_failures":
        return float(agg.auth_failures)
    if name == "rate_limited":
        return float(agg.rate_limited)
    if name == "upstream_errors":
        return float(agg.upstream_errors)
    raise InvalidInput(f"unknown metric {name!r}; use one of {', '.join(METRICS)}")


def summarize(agg: Aggregate, key: str, seconds: float) -> RouteSummary:
    p50, p95, p99 = agg.hist_total.quantiles((0.5, 0.95, 0.99))
    top = sorted(agg.errors.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return RouteSummary(
        key=key,
        requests=agg.requests,
        rps=agg.requests / seconds if seconds > 0 else 0.0,
        error_rate=agg.c5xx / agg.requests if agg.requests else 0.0,
        c4xx=agg.c4xx,
        c5xx=agg.c5xx,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        auth_failures=agg.auth_failures,
        rate_limited=agg.rate_limited,
        upstream_errors=agg.upstream_errors,
        bytes_in=agg.bytes_in,
        bytes_out=agg.bytes_out,
        top_errors=top,
    )


def _elapsed(s: int, e: int, now: float, first: int | None = None) -> float:
    """Seconds of [s, e) that were observed, for rates: the part that has happened (a
    range reaching into now) since the first recorded minute (a range reaching back before
    telemetry began). Without the second, an hour's rate over ten minutes of traffic is a
    sixth of the five-minute rate of the same traffic."""
    since = s if first is None else max(s, first)
    return max(1.0, min(e, now) - since)


async def known_key(session: AsyncSession, live: LiveStore, *, dim: str, key: str) -> bool:
    """Whether any call was ever recorded for `key` of `dim` (within retention)."""
    if any(k[0] == dim and k[1] == key for k in live.pending):
        return True
    for table in (TelemetryMinute, TelemetryHour):
        found = await session.scalar(
            select(table.bucket).where(table.dim == dim, table.key == key).limit(1)
        )
        if found is not None:
            return True
    return False


async def first_observed(session: AsyncSession, live: LiveStore) -> int | None:
    """The first minute anything was recorded in, stored or still live; None before the
    first call (two index lookups). An hour rollup counts only for an hour whose minutes
    are gone (past minute retention): an hour row's bucket is the top of its hour, which
    for the first hour of traffic is up to 59 minutes before the first call."""
    minutes = [
        int(v)
        for v in (
            await session.scalar(select(func.min(TelemetryMinute.bucket))),
            min((k[2] for k in live.pending), default=None),
        )
        if v is not None
    ]
    hour = await session.scalar(select(func.min(TelemetryHour.bucket)))
    first = min(minutes) if minutes else None
    if hour is not None and (first is None or int(hour) < first - first % 3600):
        return int(hour)
    return first


async def summary(
    session: AsyncSession,
    live: LiveStore,
    *,
    dim: str = "route",
    start: float,
    end: float,
    now: float | None = None,
) -> list[RouteSummary]:
    """One row per key of `dim` over [start, end), busiest first."""
    s, e = align(start, end)
    aggs = await collect(session, live, dim=dim, start=s, end=e)
    seconds = _elapsed(
        s, e, time.time() if now is None else now, await first_observed(session, live)
    )
    rows = [summarize(a, k, seconds) for (k, _), a in aggs.items()]
    rows.sort(key=lambda r: (-r.requests, r.key))
    return rows


async def timeseries(
    session: AsyncSession,
    live: LiveStore,
    *,
    dim: str,
    key: str,
    metric_name: str,
    start: float,
    end: float,
    step: int,
) -> list[tuple[int, float | None]]:
    """(step start, value) for each step of [start, end); steps without calls count 0."""
    if metric_name not in METRICS:
        raise InvalidInput(f"unknown metric {metric_name!r}; use one of {', '.join(METRICS)}")
    if step < 60 or step % 60:
        raise InvalidInput("step must be a whole number of minutes (60s, 5m, 1h...)")
    s, e = align(start, end)
    if (e - s) // step > 5000:
        raise InvalidInput("too many points: at most 5000 steps; use a larger step")
    if step == 60 and metric_name in _STORED:
        return await _stored_quantiles(session, live, dim, key, metric_name, s, e)
    hists = _HIST_FOR.get(metric_name, ())
    aggs = await collect(
        session, live, dim=dim, start=s, end=e, key=key, step=step, histograms=hists
    )
    return [(t, metric(aggs.get((key, t)), metric_name, step)) for t in range(s, e, step)]


_STORED = frozenset({"p50", "p95", "p99"})


async def _stored_quantiles(
    session: AsyncSession, live: LiveStore, dim: str, key: str, name: str, s: int, e: int
) -> list[tuple[int, float | None]]:
    """A per-minute percentile series from the quantiles stored in the minute rows. Minutes
    with more than one row (late data), a row from before quantiles were stored, or live
    (unflushed) data are merged from histograms instead, as `collect` does."""
    conn = await session.connection()
    column = getattr(TelemetryMinute, name)
    stmt = select(TelemetryMinute.bucket, column).where(
        TelemetryMinute.dim == dim,
        TelemetryMinute.key == key,
        TelemetryMinute.bucket >= s,
        TelemetryMinute.bucket < e,
    )
    values: dict[int, float | None] = {}
    merge: set[int] = set()
    async with live.lock:  # a minute moving from live to stored is seen exactly once
        for bucket, value in (await conn.execute(stmt)).all():
            if bucket in values or value is None:
                merge.add(bucket)
            values[bucket] = value
        merge.update(k[2] for k in live.select(dim, s, e, key))
    if merge:
        a, b = min(merge), max(merge) + 60
        aggs = await collect(session, live, dim=dim, start=a, end=b, key=key, step=60)
        for t in merge:
            values[t] = metric(aggs.get((key, t)), name, 60)
    return [(t, values.get(t)) for t in range(s, e, 60)]


def describe_change(current: float | None, other: float | None) -> str | None:
    """How `current` compares with `other`: "+42 %", "-10 %", "x6", "new" or "="."""
    if current is None or other is None:
        return None
    if other == 0:
        return "=" if current == 0 else "new"
    ratio = current / other
    if ratio >= 2:
        return f"x{ratio:.1f}".removesuffix(".0")
    pct = (ratio - 1) * 100
    if abs(pct) < 0.5:
        return "="
    return f"{pct:+.0f} %"


TREND_METRICS = (
    "rps",
    "error_rate",
    "p50",
    "p95",
    "p99",
    "4xx",
    "5xx",
    "auth_failures",
    "rate_limited",
    "upstream_errors",
)


async def trends(
    session: AsyncSession,
    live: LiveStore,
    *,
    dim: str,
    key: str,
    window: int,
    baseline: int,
    now: float,
) -> tuple[int, int, int, list[dict[str, Any]]]:
    """The last `window` seconds against the window before and against the same window
    `baseline` seconds earlier. Returns the three window starts and one dict per metric."""
    end = int(math.ceil(now / 60) * 60)
    cur_s, prev_s, base_s = end - window, end - 2 * window, end - window - baseline
    got = []
    for a in (cur_s, prev_s, base_s):
        aggs = await collect(session, live, dim=dim, start=a, end=a + window, key=key)
        got.append(aggs.get((key, a)))
    first = await first_observed(session, live)
    seconds = [
        _elapsed(cur_s, end, now, first),
        max(1.0, float(window) - max(0, (first or prev_s) - prev_s)),
        max(1.0, float(window) - max(0, (first or base_s) - base_s)),
    ]
    out = []
    for name in TREND_METRICS:
        cur, prev, base = (metric(g, name, sec) for g, sec in zip(got, seconds, strict=True))
        out.append(
            {
                "metric": name,
                "current": cur,
                "previous": prev,
                "baseline": base,
                "vs_previous": describe_change(cur, prev),
                "vs_baseline": describe_change(cur, base),
            }
        )
    return cur_s, prev_s, base_s, out

"""Per-key, per-bucket aggregates of call records: pure data, mergeable, no I/O."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from operator import floordiv, itemgetter, truediv
from typing import Any

from hypercare.gateway.records import UPSTREAM_ERRORS, CallRecord, outcome_of
from hypercare.telemetry.histogram import _LN_GAMMA, _MAX_INDEX, MIN_MS, Histogram, bucket_of

__all__ = [
    "STORED_QUANTILES",
    "UPSTREAM_ERRORS",
    "Aggregate",
    "Key",
    "aggregate_into",
    "buckets_of",
]


# the quantiles of total latency stored with each rollup row (columns p50, p95, p99)
STORED_QUANTILES = (0.5, 0.95, 0.99)


class Aggregate:
    """Counters and latency histograms of the calls of one key in one bucket."""

    __slots__ = (
        "auth_failures",
        "bytes_in",
        "bytes_out",
        "c4xx",
        "c5xx",
        "codes",
        "errors",
        "hist_gateway",
        "hist_total",
        "hist_upstream",
        "rate_limited",
        "requests",
        "upstream_errors",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.c4xx = 0
        self.c5xx = 0
        self.auth_failures = 0
        self.rate_limited = 0
        self.upstream_errors = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.codes: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.hist_total = Histogram()
        self.hist_upstream = Histogram()
        self.hist_gateway = Histogram()

    def merge(self, o: Aggregate) -> Aggregate:
        self.requests += o.requests
        self.c4xx += o.c4xx
        self.c5xx += o.c5xx
        self.auth_failures += o.auth_failures
        self.rate_limited += o.rate_limited
        self.upstream_errors += o.upstream_errors
        self.bytes_in += o.bytes_in
        self.bytes_out += o.bytes_out
        for c, n in o.codes.items():
            self.codes[c] = self.codes.get(c, 0) + n
        for e, n in o.errors.items():
            self.errors[e] = self.errors.get(e, 0) + n
        self.hist_total.merge(o.hist_total)
        self.hist_upstream.merge(o.hist_upstream)
        self.hist_gateway.merge(o.hist_gateway)
        return self

    def to_row(self, dim: str, key: str, bucket: int) -> dict[str, Any]:
        p50, p95, p99 = self.hist_total.quantiles(STORED_QUANTILES)
        return {
            "dim": dim,
            "key": key,
            "bucket": bucket,
            "requests": self.requests,
            "c4xx": self.c4xx,
            "c5xx": self.c5xx,
            "auth_failures": self.auth_failures,
            "rate_limited": self.rate_limited,
            "upstream_errors": self.upstream_errors,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "codes": json.dumps({str(c): n for c, n in self.codes.items()}),
            "errors": json.dumps(self.errors),
            "hist_total": self.hist_total.dumps(),
            "hist_upstream": self.hist_upstream.dumps(),
            "hist_gateway": self.hist_gateway.dumps(),
            "p50": p50,
            "p95": p95,
            "p99": p99,
        }

    def merge_row(
        self, row: Any, *, histograms: tuple[str, ...] = ("total",), codes: bool = True
    ) -> Aggregate:
        """Add a stored rollup row (ORM object or Row with the rollup columns). Only the
        named histograms (and codes when asked) are parsed: parsing is most of the cost of
        a query."""
        self.requests += row.requests
        self.c4xx += row.c4xx
        self.c5xx += row.c5xx
        self.auth_failures += row.auth_failures
        self.rate_limited += row.rate_limited
        self.upstream_errors += row.upstream_errors
        self.bytes_in += row.bytes_in
        self.bytes_out += row.bytes_out
        if codes:
            for c, n in json.loads(row.codes).items():
                self.codes[int(c)] = self.codes.get(int(c), 0) + n
        if row.errors != "{}":
            for e, n in json.loads(row.errors).items():
                self.errors[e] = self.errors.get(e, 0) + n
        if "total" in histograms:
            self.hist_total.merge_dumped(row.hist_total)
        if "upstream" in histograms:
            self.hist_upstream.merge_dumped(row.hist_upstream)
        if "gateway" in histograms:
            self.hist_gateway.merge_dumped(row.hist_gateway)
        return self


Key = tuple[str, str, int]  # (dimension, key, bucket start)


def buckets_of(values: Iterable[float]) -> Iterator[int]:
    """`bucket_of` of each value, with the same arithmetic, but as a chain of C-level maps:
    ``min(ceil(log(max(v, MIN_MS)) / ln(GAMMA)), MAX_INDEX)``."""
    if not isinstance(values, list | tuple):
        values = list(values)
    if not values:
        return iter(())
    lowest = min(values)
    if lowest == max(values):  # one value throughout (a gateway time of 0 for OTLP calls)
        return repeat(bucket_of(lowest), len(values))
    # the clamps cost more than the rest: skipped (one C-level pass each) when not needed
    if lowest >= MIN_MS:
        logs = map(math.log, values)
    else:
        logs = map(math.log, map(max, values, repeat(MIN_MS)))
    indices = list(map(math.ceil, map(truediv, logs, repeat(_LN_GAMMA))))
    if indices and max(indices) > _MAX_INDEX:
        return map(min, indices, repeat(_MAX_INDEX))
    return iter(indices)


_TIME, _ROUTE, _CONSUMER, _TARGET = (
    CallRecord._fields.index(f) for f in ("time", "route", "consumer", "target")
)
_STATUS, _REQ_BYTES, _RESP_BYTES, _ERROR = (
    CallRecord._fields.index(f) for f in ("status", "request_bytes", "response_bytes", "error")
)
_GATEWAY, _UPSTREAM, _TOTAL = (
    CallRecord._fields.index(f) for f in ("gateway_ms", "upstream_ms", "total_ms")
)


def _taker(positions: list[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A function picking the values at `positions` from a column (C-level)."""
    if len(positions) == 1:
        at = positions[0]
        return lambda col: (col[at],)
    return itemgetter(*positions)


def _count_group(
    out: dict[Key, Aggregate],
    keys: list[Key],
    take: Callable[[Sequence[Any]], Sequence[Any]],
    cols: Sequence[Sequence[Any]],
    latency: tuple[list[int], list[int], list[int]],
) -> None:
    """Add the records of one (bucket, route, consumer, target) combination, picked from
    the batch's columns by `take`, to the aggregates of `keys`, with C-level builtins
    (Counter, sum, itemgetter): the latency buckets were computed once for the batch and
    are counted straight into each key's histograms."""
    # one `outcome_of` per distinct (status, error) pair: the classification every counter
    # of calls shares, at the cost of a Counter over the pairs
    statuses = take(cols[_STATUS])
    pairs = Counter(zip(statuses, take(cols[_ERROR]), strict=True))
    codes: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    c4xx = c5xx = auth = limited = upstream_errors = 0
    for (status, error), n in pairs.items():
        codes[status] += n
        if error:
            errors[error] += n
        o = outcome_of(status, error)
        c5xx += n if o.server_error else 0
        c4xx += n if o.client_error else 0
        auth += n if o.auth_failure else 0
        limited += n if o.rate_limited else 0
        upstream_errors += n if o.upstream_error else 0
    requests = len(statuses)
    bytes_in = sum(take(cols[_REQ_BYTES]))
    bytes_out = sum(take(cols[_RESP_BYTES]))
    total = take(latency[0])
    upstream = take(latency[1]) if latency[1] else ()
    gateway = take(latency[2])
    for k in keys:
        agg = out.get(k)
        if agg is None:
            agg = out[k] = Aggregate()
        agg.requests += requests
        agg.c4xx += c4xx
        agg.c5xx += c5xx
        agg.auth_failures += auth
        agg.rate_limited += limited
        agg.upstream_errors += upstream_errors
        agg.bytes_in += bytes_in
        agg.bytes_out += bytes_out
        mine = agg.codes
        for c, n in codes.items():
            mine[c] = mine.get(c, 0) + n
        if errors:
            errs = agg.errors
            for e, n in errors.items():
                errs[e] = errs.get(e, 0) + n
        agg.hist_total.add_indices(total)
        agg.hist_upstream.add_indices(upstream)
        agg.hist_gateway.add_indices(gateway)


def aggregate_into(
    out: dict[Key, Aggregate],
    records: Sequence[CallRecord],
    *,
    bucket_seconds: int = 60,
    columns: Sequence[Sequence[Any]] | None = None,
) -> set[int]:
    """Add `records` to per (dimension, key, bucket) aggregates: by route, consumer, target.
    Returns the bucket starts the records fall in. `columns` are the records' columns
    (``list(zip(*records))``) when the caller has them already.

    The latency buckets are computed once for the batch, column-wise; records are then
    grouped per (bucket, route, consumer, target) combination (the only Python step per
    record: their positions), and each group is counted once from the batch's columns and
    added to the aggregates of its route, consumer and target.
    """
    if not records:
        return set()
    cols = columns if columns is not None else list(zip(*records))  # noqa: B905
    groups: dict[tuple[float, str, str, str], list[int]] = {}
    get = groups.get
    starts = map(floordiv, cols[_TIME], repeat(bucket_seconds))
    for i, ck in enumerate(zip(starts, cols[_ROUTE], cols[_CONSUMER], cols[_TARGET])):  # noqa: B905
        g = get(ck)
        if g is None:
            groups[ck] = [i]
        else:
            g.append(i)
    # upstream latency counts only for calls that went to a target
    has_target = any(cols[_TARGET])
    latency = (
        list(buckets_of(cols[_TOTAL])),
        list(buckets_of(cols[_UPSTREAM])) if has_target else [],
        list(buckets_of(cols[_GATEWAY])),
    )
    buckets: set[int] = set()
    for (fb, route, consumer, target), positions in groups.items():
        b = int(fb) * bucket_seconds
        buckets.add(b)
        keys: list[Key] = [("route", route, b)]
        if consumer:
            keys.append(("consumer", consumer, b))
        if target:
            keys.append(("target", target, b))
        group_latency = latency if target else (latency[0], [], latency[2])
        _count_group(out, keys, _taker(positions), cols, group_latency)
    return buckets

"""Per-key, per-bucket aggregates of call records: pure data, mergeable, no I/O."""

from __future__ import annotations

import json
from typing import Any

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.histogram import Histogram, bucket_of

# error kinds that mean "the upstream misbehaved" (as opposed to the client or the gateway)
UPSTREAM_ERRORS = frozenset(
    {"timeout", "connect_failed", "reset", "bad_response", "no_healthy_target"}
)


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

    def add(self, r: CallRecord, i_total: int, i_upstream: int | None, i_gateway: int) -> None:
        """Count one record whose latency buckets were computed once by the caller."""
        self.requests += 1
        status = r.status
        codes = self.codes
        codes[status] = codes.get(status, 0) + 1
        if status >= 400:
            if status >= 500:
                self.c5xx += 1
            else:
                self.c4xx += 1
                if status == 401 or status == 403:
                    self.auth_failures += 1
                elif status == 429:
                    self.rate_limited += 1
        err = r.error
        if err:
            self.errors[err] = self.errors.get(err, 0) + 1
            if err in UPSTREAM_ERRORS:
                self.upstream_errors += 1
        self.bytes_in += r.request_bytes
        self.bytes_out += r.response_bytes
        h = self.hist_total.counts
        h[i_total] = h.get(i_total, 0) + 1
        if i_upstream is not None:
            h = self.hist_upstream.counts
            h[i_upstream] = h.get(i_upstream, 0) + 1
        h = self.hist_gateway.counts
        h[i_gateway] = h.get(i_gateway, 0) + 1

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


def aggregate_into(
    out: dict[Key, Aggregate], records: list[CallRecord], *, bucket_seconds: int = 60
) -> None:
    """Add `records` to per (dimension, key, bucket) aggregates: by route, consumer, target.

    Records are first counted per (bucket, route, consumer, target) combination, once each;
    the combinations (far fewer than records) are then merged into the three dimensions.
    """
    combos: dict[tuple[int, str, str, str], Aggregate] = {}
    for r in records:
        b = int(r.time // bucket_seconds) * bucket_seconds
        ck = (b, r.route, r.consumer, r.target)
        agg = combos.get(ck)
        if agg is None:
            agg = combos[ck] = Aggregate()
        agg.add(
            r,
            bucket_of(r.total_ms),
            bucket_of(r.upstream_ms) if r.target else None,
            bucket_of(r.gateway_ms),
        )
    for (b, route, consumer, target), agg in combos.items():
        for k in (
            ("route", route, b),
            ("consumer", consumer, b) if consumer else None,
            ("target", target, b) if target else None,
        ):
            if k is None:
                continue
            mine = out.get(k)
            if mine is None:
                out[k] = Aggregate().merge(agg)
            else:
                mine.merge(agg)

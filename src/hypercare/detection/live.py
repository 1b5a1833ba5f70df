"""Live per-route telemetry windows for detection: one-second buckets fed on ingest.

The detector must see a fault within seconds, so it does not wait for minute rollups: the
collector hands it every batch of call records as they arrive, and rules are evaluated over
the last few seconds of buckets. Memory is bounded: a fixed number of seconds per route,
a capped latency sample per second, and a capped set of example paths and request ids.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from hypercare.detection.rules import WindowStats
from hypercare.gateway.records import CallRecord, outcome_of

MAX_SAMPLES_PER_SECOND = 256


@dataclass
class Bucket:
    second: int
    requests: int = 0
    status_5xx: int = 0
    status_4xx: int = 0
    gateway_errors: int = 0
    auth_failures: int = 0
    rate_limited: int = 0
    upstream_errors: int = 0
    latencies: list[float] = field(default_factory=list)
    paths: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    failed_ids: list[str] = field(default_factory=list)

    def add(self, r: CallRecord) -> None:
        self.requests += 1
        o = outcome_of(r.status, r.error)  # the classification telemetry counts with too
        self.status_5xx += o.server_error
        self.status_4xx += o.client_error
        self.auth_failures += o.auth_failure
        self.rate_limited += o.rate_limited
        self.upstream_errors += o.upstream_error
        # failed in the gateway without a 5xx reaching the client (e.g. a reset mid-body)
        self.gateway_errors += o.failed and not o.server_error
        failed = o.failed
        status = r.status
        if len(self.latencies) < MAX_SAMPLES_PER_SECOND:
            self.latencies.append(r.total_ms)
        if failed:
            if len(self.paths) < 50 or r.path in self.paths:
                self.paths[r.path] += 1
            self.errors[r.error or f"http_{status}"] += 1
            if len(self.failed_ids) < 5 and r.request_id:
                self.failed_ids.append(r.request_id)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


class RouteWindow:
    """The last `keep` seconds of one route."""

    def __init__(self, route: str, keep: int) -> None:
        self.route = route
        self.keep = keep
        self.buckets: deque[Bucket] = deque()
        self.healthy_targets: int | None = None

    def bucket(self, second: int) -> Bucket | None:
        if self.buckets and second < self.buckets[0].second:
            if second <= self.buckets[-1].second - self.keep:
                return None  # older than what we keep
            # a late node's batch: a second before the oldest one held, still within `keep`
            self.buckets.appendleft(Bucket(second))
            return self.buckets[0]
        if not self.buckets or second > self.buckets[-1].second:
            self.buckets.append(Bucket(second))
            while self.buckets and self.buckets[0].second <= second - self.keep:
                self.buckets.popleft()
            return self.buckets[-1]
        for b in reversed(self.buckets):
            if b.second == second:
                return b
            if b.second < second:
                break
        # a late second between kept buckets: keep order by inserting
        new = Bucket(second)
        items = sorted([*self.buckets, new], key=lambda x: x.second)
        self.buckets = deque(items)
        return new

    def stats(self, start: float, end: float) -> WindowStats:
        # walk back from the newest second: evaluation windows are the last seconds, so this
        # stops after a few buckets instead of scanning the hour kept
        picked = []
        for b in reversed(self.buckets):
            if b.second < start:
                break
            if b.second < end:
                picked.append(b)
        picked.reverse()
        latencies = sorted(v for b in picked for v in b.latencies)
        paths: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        ids: list[str] = []
        for b in picked:
            paths.update(b.paths)
            errors.update(b.errors)
            ids.extend(b.failed_ids)
        return WindowStats(
            route=self.route,
            start=start,
            end=end,
            requests=sum(b.requests for b in picked),
            status_5xx=sum(b.status_5xx for b in picked),
            status_4xx=sum(b.status_4xx for b in picked),
            gateway_errors=sum(b.gateway_errors for b in picked),
            auth_failures=sum(b.auth_failures for b in picked),
            rate_limited=sum(b.rate_limited for b in picked),
            upstream_errors=sum(b.upstream_errors for b in picked),
            p50=percentile(latencies, 0.50),
            p95=percentile(latencies, 0.95),
            p99=percentile(latencies, 0.99),
            healthy_targets=self.healthy_targets,
            top_paths=tuple(paths.most_common(3)),
            top_errors=tuple(errors.most_common(3)),
            sample_request_ids=tuple(ids[-5:]),
        )


class LiveWindows:
    """Every route's recent seconds; `observe` is called with each ingested batch."""

    def __init__(self, keep_seconds: int = 3600) -> None:
        self.keep = keep_seconds
        self.routes: dict[str, RouteWindow] = {}

    def observe(self, records: Iterable[CallRecord]) -> None:
        for r in records:
            if not r.route:
                continue
            window = self.routes.get(r.route)
            if window is None:
                window = self.routes[r.route] = RouteWindow(r.route, self.keep)
            bucket = window.bucket(int(r.time))
            if bucket is not None:
                bucket.add(r)

    def set_healthy_targets(self, route: str, healthy: int) -> None:
        window = self.routes.get(route)
        if window is None:
            window = self.routes[route] = RouteWindow(route, self.keep)
        window.healthy_targets = healthy

    def stats(self, route: str, start: float, end: float) -> WindowStats:
        window = self.routes.get(route)
        if window is None:
            return WindowStats(route=route, start=start, end=end)
        return window.stats(start, end)

    def series(self, route: str, end: float, count: int, step: float) -> list[WindowStats]:
        """`count` consecutive windows of `step` seconds ending at `end`, oldest first."""
        return [
            self.stats(route, end - i * step, end - (i - 1) * step) for i in range(count, 0, -1)
        ]

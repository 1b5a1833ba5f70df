"""The worker's own aggregate of call records, rendered as Prometheus text on the admin port.

`Metrics.emit` is a `RecordSink`: it runs on the hot path, so it only bumps integers in dicts
keyed by small tuples. Rendering (on a scrape) does the formatting.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

from hypercare.gateway.records import CallRecord

# Milliseconds. Fine below 10 ms where the gateway's own overhead lives.
BUCKETS_MS: tuple[float, ...] = (
    0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
)  # fmt: skip


class Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_MS) + 1)
        self.sum = 0.0

    def observe(self, value_ms: float) -> None:
        self.counts[bisect_left(BUCKETS_MS, value_ms)] += 1
        self.sum += value_ms


class Metrics:
    """Counters and histograms for one worker; also a `RecordSink`."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.auth_failures: dict[tuple[str, str], int] = {}
        self.rate_limited: dict[str, int] = {}

    def emit(self, record: CallRecord) -> None:
        key = (record.route, record.status)
        self.requests[key] = self.requests.get(key, 0) + 1
        route = record.route
        lat = self.latency
        h = lat.get((route, "request"))
        if h is None:
            h = lat[(route, "request")] = Histogram()
            lat[(route, "upstream")] = Histogram()
            lat[(route, "gateway")] = Histogram()
        h.observe(record.total_ms)
        lat[(route, "gateway")].observe(record.gateway_ms)
        if record.target:
            lat[(route, "upstream")].observe(record.upstream_ms)
        if record.error:
            ek = (route, record.error)
            self.errors[ek] = self.errors.get(ek, 0) + 1

    def auth_failure(self, route: str, reason: str) -> None:
        k = (route, reason)
        self.auth_failures[k] = self.auth_failures.get(k, 0) + 1

    def limited(self, route: str) -> None:
        self.rate_limited[route] = self.rate_limited.get(route, 0) + 1

    def render(
        self,
        target_health: Iterable[tuple[str, str, bool]] = (),
        gauges: Callable[[], Iterable[tuple[str, str, float]]] | None = None,
    ) -> str:
        """Prometheus text exposition format 0.0.4."""
        out: list[str] = []
        out.append("# HELP hypercare_http_requests_total Requests answered, by route and status.")
        out.append("# TYPE hypercare_http_requests_total counter")
        for (route, code), n in sorted(self.requests.items()):
            out.append(f'hypercare_http_requests_total{{route="{_esc(route)}",code="{code}"}} {n}')
        out.append("# HELP hypercare_http_request_duration_ms Latency in ms: request (total), "
                   "upstream, gateway (own overhead).")  # fmt: skip
        out.append("# TYPE hypercare_http_request_duration_ms histogram")
        for (route, kind), h in sorted(self.latency.items()):
            labels = f'route="{_esc(route)}",type="{kind}"'
            acc = 0
            for bound, c in zip(BUCKETS_MS, h.counts, strict=False):
                acc += c
                out.append(
                    f'hypercare_http_request_duration_ms_bucket{{{labels},le="{bound:g}"}} {acc}'
                )
            acc += h.counts[-1]
            out.append(f'hypercare_http_request_duration_ms_bucket{{{labels},le="+Inf"}} {acc}')
            out.append(f"hypercare_http_request_duration_ms_sum{{{labels}}} {h.sum:.3f}")
            out.append(f"hypercare_http_request_duration_ms_count{{{labels}}} {acc}")
        out.append("# HELP hypercare_gateway_errors_total Calls that ended in an error, by kind.")
        out.append("# TYPE hypercare_gateway_errors_total counter")
        for (route, kind), n in sorted(self.errors.items()):
            out.append(f'hypercare_gateway_errors_total{{route="{_esc(route)}",kind="{kind}"}} {n}')
        out.append("# HELP hypercare_auth_failures_total Refused credentials (401/403).")
        out.append("# TYPE hypercare_auth_failures_total counter")
        for (route, reason), n in sorted(self.auth_failures.items()):
            out.append(
                f'hypercare_auth_failures_total{{route="{_esc(route)}",reason="{reason}"}} {n}'
            )
        out.append("# HELP hypercare_rate_limited_total Requests refused with 429.")
        out.append("# TYPE hypercare_rate_limited_total counter")
        for route, n in sorted(self.rate_limited.items()):
            out.append(f'hypercare_rate_limited_total{{route="{_esc(route)}"}} {n}')
        out.append("# HELP hypercare_upstream_target_health 1 when the target is in rotation.")
        out.append("# TYPE hypercare_upstream_target_health gauge")
        for upstream, target, ok in target_health:
            out.append(
                f'hypercare_upstream_target_health{{upstream="{_esc(upstream)}",'
                f'target="{target}"}} {int(ok)}'
            )
        if gauges is not None:
            for name, help_, value in gauges():
                out.append(f"# HELP {name} {help_}")
                out.append(f"# TYPE {name} gauge")
                out.append(f"{name} {value:g}")
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

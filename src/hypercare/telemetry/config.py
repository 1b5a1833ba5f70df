"""The ``telemetry:`` section of the configuration file."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from hypercare.configtypes import Duration, StrictModel
from hypercare.telemetry.capture import CapturePolicy, Policy

DEFAULT_REDACT_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-access-token",
    "x-csrf-token",
    # globs: any header whose name holds one of these words
    "*password*",
    "*secret*",
    "*token*",
    "*api-key*",
    "*apikey*",
)
DEFAULT_REDACT_FIELDS = (
    "*password*",
    "*passwd*",
    "*token*",
    "*secret*",
    "card*",
    "cvv",
    "cvc",
    "pin",
    "ssn",
    "api_key",
    "apikey",
    "authorization",
)


# the metrics a rollup query answers per route (telemetry.query; launch `metric` criteria)
METRICS = (
    "requests",
    "rps",
    "error_rate",
    "5xx",
    "4xx",
    "p50",
    "p95",
    "p99",
    "upstream_p95",
    "gateway_p95",
    "auth_failures",
    "rate_limited",
    "upstream_errors",
)


class CaptureConfig(StrictModel):
    default: CapturePolicy = Policy("off")
    routes: dict[str, CapturePolicy] = Field(default_factory=dict)
    # bytes kept of each body (request and response), copied as they stream through
    max_body_bytes: int = Field(default=8192, ge=0, le=65536)

    def policy_for(self, route: str) -> Policy:
        return self.routes.get(route, self.default)


class RedactConfig(StrictModel):
    # header names or glob patterns ("*session*"), added to the built-in list
    # (Authorization, Cookie, Set-Cookie, API-key headers, *password*, *secret*, *token*...)
    headers: list[str] = Field(default_factory=list, max_length=200)
    # glob patterns on JSON, form, multipart and query field names, added to the built-in list
    fields: list[str] = Field(default_factory=list, max_length=200)


class RetentionConfig(StrictModel):
    calls: Duration = timedelta(hours=72)
    minutes: Duration = timedelta(days=30)
    hours: Duration = timedelta(days=365)


class OtlpConfig(StrictModel):
    """The OTLP/HTTP receiver (``POST /v1/traces``, ``POST /v1/logs`` on the console's port)."""

    # the span (or log record) attribute whose value is the call's consumer
    consumer_attribute: str = Field(default="enduser.id", min_length=1, max_length=200)
    # exports decoded at once; more are answered 429 with Retry-After (collectors retry)
    max_concurrent: int = Field(default=8, ge=1, le=1024)
    # largest body accepted as sent (compressed), in MiB; 413 above
    max_body_mb: int = Field(default=16, ge=1, le=256)


class TelemetryConfig(StrictModel):
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    redact: RedactConfig = Field(default_factory=RedactConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    # how often the live aggregates of closed minutes are written to the store
    flush_interval: Duration = timedelta(seconds=5)
    # a minute is closed (written as a rollup) this long after it ends
    minute_grace: Duration = timedelta(seconds=10)
    compaction_interval: Duration = timedelta(minutes=1)
    # rows deleted per transaction by retention, to keep locks short
    delete_batch: int = Field(default=5000, ge=100, le=100000)
    # trends compare a window with the same window this long ago
    baseline: Duration = timedelta(days=7)
    # memory for decoded rollup histograms kept between analytics queries (0: no cache)
    histogram_cache_mb: int = Field(default=64, ge=0, le=65536)
    otlp: OtlpConfig = Field(default_factory=OtlpConfig)

"""Telemetry tables and API schemas.

Times of calls and rollup buckets are Unix seconds (floats for calls, integers for bucket
starts): the hot ingest path writes tens of thousands of rows a second and converting each
to a datetime would cost more than the insert itself. The API shows ISO 8601 UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hypercare.store.base import Base, UTCDateTime, utcnow

# Column sizes; longer values are cut on ingest (never rejected: nothing accepted is lost).
SIZES = {
    "route": 200,
    "consumer": 200,
    "method": 16,
    "path_template": 500,
    "path": 2000,
    "target": 300,
    "error": 40,
    "client_ip": 64,
    "request_id": 128,
    "trace_id": 64,
    "upstream": 200,
    "user_agent": 500,
}
DIMENSIONS = ("route", "consumer", "target")
# 64-bit ids on PostgreSQL (billions of calls); SQLite's rowid is already 64-bit
BigId = BigInteger().with_variant(Integer(), "sqlite")


class TelemetryNode(Base):
    """A gateway node allowed to ship records. Only the token's hash is stored."""

    __tablename__ = "telemetry_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class TelemetryBatch(Base):
    """One accepted ingest batch. `batch_key` makes a re-sent batch a no-op; `aggregated`
    says its records are in the rollup tables (else they are rebuilt from its segment)."""

    __tablename__ = "telemetry_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_key: Mapped[str] = mapped_column(String(64), unique=True)
    node: Mapped[str] = mapped_column(String(120))
    received_at: Mapped[float] = mapped_column(Float, index=True)
    records: Mapped[int] = mapped_column(Integer)
    aggregated: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # records before this minute (Unix s) are already in the rollups
    flushed_until: Mapped[int] = mapped_column(BigInteger, default=0)


class TelemetrySegment(Base):
    """The call detail of one batch, stored as one block (telemetry/segments.py): its calls
    as a JSON array of rows, with the time range and the distinct routes, consumers,
    statuses and error kinds in it, so that a search reads only the blocks that can match.
    Written once and never updated (a batch's mutable flags live in `telemetry_batches`)."""

    __tablename__ = "telemetry_segments"

    batch_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    first_ts: Mapped[float] = mapped_column(Float)
    last_ts: Mapped[float] = mapped_column(Float, index=True)
    # "\n"-separated sets with a "\n" at both ends, so that `instr` matches whole values
    routes: Mapped[str] = mapped_column(Text)
    consumers: Mapped[str] = mapped_column(Text)
    statuses: Mapped[str] = mapped_column(Text)
    errors: Mapped[str] = mapped_column(Text)
    # last, so that reading the columns above never touches the block's overflow pages
    calls: Mapped[bytes] = mapped_column(LargeBinary)


class TelemetrySegmentRoute(Base):
    """One route's part of a call block: the statuses and error kinds of that route's calls
    in the block, so that a search of one route (the route page's failing calls) reads only
    the blocks holding a match, through the (route, last_ts) index, however many other
    routes and blocks there are. The time range is the block's."""

    __tablename__ = "telemetry_segment_routes"
    __table_args__ = (
        Index("ix_telemetry_segment_routes_route_last_ts", "route", "last_ts"),
        {"sqlite_with_rowid": False},
    )

    batch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    route: Mapped[str] = mapped_column(String(SIZES["route"]), primary_key=True)
    first_ts: Mapped[float] = mapped_column(Float)
    last_ts: Mapped[float] = mapped_column(Float)
    statuses: Mapped[str] = mapped_column(Text)
    errors: Mapped[str] = mapped_column(Text)


class TelemetryCallKey(Base):
    """Lookup of calls by request id and trace id: `key` starts with the call's second and
    ends with a hash of the id (telemetry/callkeys.py); `ref` is the call's place, see
    `segments.ref`. Keyed on (key, ref) without a rowid: one B-tree, appended near its end."""

    __tablename__ = "telemetry_call_keys"
    __table_args__ = ({"sqlite_with_rowid": False},)

    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ref: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


# what the analytics queries read of a rollup row besides its histograms (query.py)
COUNTER_COLUMNS = (
    "key",
    "requests",
    "c4xx",
    "c5xx",
    "auth_failures",
    "rate_limited",
    "upstream_errors",
    "bytes_in",
    "bytes_out",
    "errors",
)


class _Rollup:
    """Columns shared by the minute and hour rollups (one row per dimension key and bucket;
    late data adds another row for the same bucket, and readers sum them)."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dim: Mapped[str] = mapped_column(String(10))
    key: Mapped[str] = mapped_column(String(300))
    bucket: Mapped[int] = mapped_column(BigInteger)  # Unix seconds of the bucket start
    requests: Mapped[int] = mapped_column(BigInteger)
    c4xx: Mapped[int] = mapped_column(BigInteger)
    c5xx: Mapped[int] = mapped_column(BigInteger)
    auth_failures: Mapped[int] = mapped_column(BigInteger)
    rate_limited: Mapped[int] = mapped_column(BigInteger)
    upstream_errors: Mapped[int] = mapped_column(BigInteger)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    codes: Mapped[str] = mapped_column(Text)  # JSON {"200": n, ...}
    errors: Mapped[str] = mapped_column(Text)  # JSON {"timeout": n, ...}
    hist_total: Mapped[str] = mapped_column(Text)  # Histogram.dumps()
    hist_upstream: Mapped[str] = mapped_column(Text)
    hist_gateway: Mapped[str] = mapped_column(Text)
    # quantiles of hist_total (ms), computed when the row is written: a percentile series
    # at the row's own step reads these instead of the histograms. NULL: none (no calls,
    # or a row written before they were stored)
    p50: Mapped[float | None] = mapped_column(Float, nullable=True)
    p95: Mapped[float | None] = mapped_column(Float, nullable=True)
    p99: Mapped[float | None] = mapped_column(Float, nullable=True)


class TelemetryMinute(_Rollup, Base):
    __tablename__ = "telemetry_minutes"
    __table_args__ = (
        Index("ix_telemetry_minutes_dim_key_bucket", "dim", "key", "bucket"),
        # every key of a dimension over a range (the routes table) reads only that range,
        # and its counters from the index alone: the rows themselves are mostly histograms
        Index("ix_telemetry_minutes_dim_bucket", "dim", "bucket", *COUNTER_COLUMNS),
        Index("ix_telemetry_minutes_bucket", "bucket"),
    )


class TelemetryHour(_Rollup, Base):
    __tablename__ = "telemetry_hours"
    __table_args__ = (
        Index("ix_telemetry_hours_dim_key_bucket", "dim", "key", "bucket"),
        Index("ix_telemetry_hours_dim_bucket", "dim", "bucket", *COUNTER_COLUMNS),
        Index("ix_telemetry_hours_bucket", "bucket"),
    )


class TelemetryState(Base):
    """Small named watermarks of the background jobs (e.g. hours rolled up until)."""

    __tablename__ = "telemetry_state"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    value: Mapped[int] = mapped_column(BigInteger)


# --- API schemas ----------------------------------------------------------------------


class RouteSummary(BaseModel):
    key: str
    requests: int
    rps: float
    error_rate: float
    c4xx: int
    c5xx: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    auth_failures: int
    rate_limited: int
    upstream_errors: int
    bytes_in: int
    bytes_out: int
    top_errors: list[tuple[str, int]]


class RoutesRead(BaseModel):
    dim: str
    start: datetime
    end: datetime
    rows: list[RouteSummary]


class Point(BaseModel):
    t: datetime
    value: float | None


class TimeseriesRead(BaseModel):
    dim: str
    key: str
    metric: str
    start: datetime
    end: datetime
    step_seconds: int
    points: list[Point]


class TrendMetric(BaseModel):
    metric: str
    current: float | None
    previous: float | None
    baseline: float | None
    vs_previous: str | None
    vs_baseline: str | None


class TrendsRead(BaseModel):
    dim: str
    key: str
    window_seconds: int
    current_start: datetime
    previous_start: datetime
    baseline_start: datetime
    metrics: list[TrendMetric]


class CallRead(BaseModel):
    id: int
    time: datetime
    route: str
    consumer: str
    method: str
    path_template: str
    path: str
    status: int
    request_bytes: int
    response_bytes: int
    target: str
    upstream: str
    gateway_ms: float
    upstream_ms: float
    total_ms: float
    error: str
    client_ip: str
    request_id: str
    trace_id: str
    user_agent: str
    capture: dict[str, Any] | None = None


class CallsPage(BaseModel):
    items: list[CallRead]
    next_cursor: str | None


class IngestResult(BaseModel):
    batch: str
    accepted: int
    duplicate: bool


class LogIngestResult(BaseModel):
    """What `POST /api/v1/ingest/{format}` made of a pushed access-log body."""

    batch: str
    accepted: int
    rejected: int = Field(description="entries that did not match the format (counted)")
    reason: str | None = Field(None, description="why the last rejected entry was refused")
    duplicate: bool


class UnparsedSource(BaseModel):
    source: str
    total: int
    sample: str
    reason: str
    last_at: datetime | None


class UnparsedRead(BaseModel):
    sources: list[UnparsedSource]


class NodeTokenCreated(BaseModel):
    id: int
    name: str
    prefix: str
    token: str


class IntakeSourceRead(BaseModel):
    """What one external source (``otlp/traces``, ``otlp/logs``) sent since the start."""

    source: str
    requests: int
    items: int
    calls: int
    rejected: int
    malformed: int
    missing_service: int
    last_error: str
    last_sample: str
    last_error_at: datetime | None


class RouteSuggestion(BaseModel):
    """A frequent path template under the catch-all route, and the route it would be."""

    method: str
    path_template: str
    calls: int
    config: dict[str, Any]


class IntakeRead(BaseModel):
    catch_all: str
    external_routes: list[str]
    sources: list[IntakeSourceRead]
    suggestions: list[RouteSuggestion]

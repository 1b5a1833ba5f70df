"""A configuration with one gateway route, a launch with SLOs and exit criteria, and helpers
to write minute rollups and issues."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.config import HypercareConfig, parse_config
from hypercare.telemetry.histogram import Histogram
from hypercare.telemetry.models import TelemetryMinute

CONFIG = """\
gateway:
  upstreams:
    pay: {targets: ['127.0.0.1:9']}
  routes:
    - name: payment-status
      match: {path: /payment/status}
      upstream: pay
      tags: {component: payments}
    - name: catalog
      match: {path: /catalog}
      upstream: pay
      tags: {component: catalog}
launches:
  - name: checkout-v2
    start: 2026-01-05T09:00:00Z
    end: 2026-02-02T09:00:00Z
    routes: [payment-status]
    roster:
      triage: {responsible: [dana], accountable: lee}
    slos:
      - {name: avail, route: payment-status, target: 99}
      - {name: fast, component: payments, kind: latency, threshold: 300ms, target: 90}
    exit_criteria:
      - no_open: [P1, P2]
      - slo_met: {for: 48h}
      - metric: {route: payment-status, metric: error_rate, max: 0.05, window: 1h}
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "launch.yaml")


def minute_row(
    route: str, bucket: datetime | int, requests: int, c5xx: int, ms: float
) -> TelemetryMinute:
    at = bucket if isinstance(bucket, int) else int(bucket.timestamp())
    hist = Histogram.of([ms] * requests)
    return TelemetryMinute(
        dim="route",
        key=route,
        bucket=at // 60 * 60,
        requests=requests,
        c4xx=0,
        c5xx=c5xx,
        auth_failures=0,
        rate_limited=0,
        upstream_errors=0,
        bytes_in=0,
        bytes_out=0,
        codes="{}",
        errors="{}",
        hist_total=hist.dumps(),
        hist_upstream=hist.dumps(),
        hist_gateway=Histogram().dumps(),
    )


async def add_minutes(session: AsyncSession, rows: list[TelemetryMinute]) -> None:
    session.add_all(rows)
    await session.flush()

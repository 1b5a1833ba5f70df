"""Synthetic call records for telemetry tests."""

from __future__ import annotations

import random
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.gateway.records import CallRecord
from hypercare.telemetry.calls import Found, to_read
from hypercare.telemetry.models import CallRead, TelemetrySegment
from hypercare.telemetry.segments import call_id, loads


def record(
    t: float,
    *,
    route: str = "orders",
    consumer: str = "shop",
    status: int = 200,
    total_ms: float = 10.0,
    error: str = "",
    target: str = "10.0.0.1:8080",
    request_id: str | None = None,
) -> CallRecord:
    return CallRecord(
        time=t,
        route=route,
        consumer=consumer,
        method="GET",
        path_template="/orders/{id}",
        path="/orders/42",
        status=status,
        request_bytes=100,
        response_bytes=1000,
        target=target,
        gateway_ms=0.2,
        upstream_ms=max(total_ms - 0.2, 0.0),
        total_ms=total_ms,
        error=error,
        client_ip="127.0.0.1",
        request_id=request_id or uuid.uuid4().hex,
        trace_id=uuid.uuid4().hex,
        upstream="orders-svc",
        user_agent="test",
    )


def random_records(
    n: int, start: float, seconds: float, *, routes: int = 3, seed: int = 1
) -> list[CallRecord]:
    rng = random.Random(seed)
    statuses = [200] * 80 + [201] * 5 + [404] * 4 + [401] * 3 + [429] * 3 + [500] * 3 + [503] * 2
    out = []
    for _ in range(n):
        status = rng.choice(statuses)
        error = {401: "auth", 429: "rate_limited", 503: "timeout"}.get(status, "")
        out.append(
            record(
                start + rng.random() * seconds,
                route=f"route-{rng.randrange(routes)}",
                consumer=f"c{rng.randrange(4)}",
                status=status,
                error=error,
                total_ms=rng.lognormvariate(3, 1),
            )
        )
    return out


async def stored_calls(engine: AsyncEngine) -> list[CallRead]:
    """Every stored call, in the order of their batches and of the calls in each."""
    async with engine.connect() as conn:
        result = await conn.execute(
            select(TelemetrySegment.batch_id, TelemetrySegment.calls).order_by(
                TelemetrySegment.batch_id
            )
        )
        return [
            to_read(Found(row[0], call_id(batch_id, pos), row))
            for batch_id, data in result
            for pos, row in enumerate(loads(data))
        ]

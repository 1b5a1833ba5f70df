"""Drafting a post-incident review: the time to read an incident's failing calls from call
detail and decide its facts, against reading the same call blocks alone.

    python bench/review.py                        # SQLite in a temp dir, 200,000 calls
    python bench/review.py --calls 1000000 --runs 5
    python bench/review.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

One hour of calls on six routes (``--calls`` of them, in batches of 2,000 as the gateway
ships them) is ingested; during a 20-minute incident 30 % of the calls of `payment-status`
fail. A resolved P1 issue on that route with a gateway signal and a user report is drafted
``--runs`` times (`review.service.draft_facts`: the route summaries name the blocks whose
part of the route holds a failing call, those are read, their failing calls tallied, then
`rules.draft_facts`). The reference, measured in the same run, reads every block of the
route over the same time range (`telemetry.calls.load_blocks`) and does nothing with them:
what a draft would cost without the summaries. Medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.config import parse_config
from hypercare.feedback.models import Signal
from hypercare.gateway.records import CallRecord
from hypercare.review import service
from hypercare.review.config import ReviewConfig
from hypercare.store.db import create_engine, session_factory
from hypercare.store.migrate import migrate
from hypercare.telemetry.calls import load_blocks
from hypercare.telemetry.collector import Collector
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.models import TelemetrySegmentRoute
from hypercare.telemetry.wire import Batch
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate
from hypercare.triage.rules import Matrix, Status

ROUTES = ["payment-status", "payment-create", "catalog-search", "catalog-item", "orders", "cart"]
BATCH = 2000


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _calls(n: int, start: float, rng: random.Random) -> list[CallRecord]:
    out = []
    for _ in range(n):
        t = start + rng.random() * 3600
        route = rng.choice(ROUTES)
        failing = route == "payment-status" and 1200 <= t - start < 2400 and rng.random() < 0.3
        out.append(
            CallRecord(
                time=t,
                route=route,
                consumer=f"key-{rng.randrange(40)}",
                method="GET",
                path_template="/x",
                path="/x",
                status=503 if failing else 200,
                request_bytes=100,
                response_bytes=900,
                target="127.0.0.1:9",
                gateway_ms=0.2,
                upstream_ms=20.0,
                total_ms=20.2,
                error="timeout" if failing and rng.random() < 0.5 else "",
                client_ip="127.0.0.1",
                request_id=uuid.uuid4().hex,
                trace_id=uuid.uuid4().hex,
                upstream="svc",
                user_agent="bench",
            )
        )
    out.sort(key=lambda c: c.time)
    return out


async def main(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="hc-bench-review-")
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
    if not url.startswith("postgresql"):
        await run(args, create_engine(url))
        return
    # PostgreSQL: a private schema, dropped afterwards (nothing is left in the database)
    schema = f"bench_review_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        engine = create_engine(url, connect_args={"server_settings": {"search_path": schema}})
        await run(args, engine)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def run(args: argparse.Namespace, engine: AsyncEngine) -> None:
    await migrate(engine)
    sessions = session_factory(engine)
    start = float(int(time.time()) - 2 * 3600)
    calls = _calls(args.calls, start, random.Random(7))
    collector = Collector(engine, TelemetryConfig(), LiveStore())
    for i in range(0, len(calls), BATCH):
        batch = Batch(uuid.uuid4().hex, time.time(), 0, 0, calls[i : i + BATCH], {})
        await collector.ingest("bench", batch)
    matrix = Matrix(parse_config("{}").triage)
    async with sessions() as session, session.begin():
        issue = await triage.create_issue(
            session=session,
            matrix=matrix,
            data=IssueCreate(title="Payments failing", priority="P1", route="payment-status"),
            actor="bench",
            detected_at=_ts(start + 1230),
            now=_ts(start + 1230),
        )
        for kind, after in (("system", 1230), ("user", 1300)):
            session.add(
                Signal(
                    kind=kind,
                    source="bench",
                    occurred_at=_ts(start + after),
                    received_at=_ts(start + after),
                    summary=kind,
                    body="",
                    route="payment-status",
                    labels={},
                    request_ids=[],
                    dedup_key=uuid.uuid4().hex,
                    issue_id=issue.id,
                    raw={},
                )
            )
        for to, after in ((Status.triaged, 1240), (Status.resolved, 2500)):
            await triage.transition(
                session=session, matrix=matrix, issue_id=issue.id, to=to, reason=None,
                actor="bench", now=_ts(start + after),
            )  # fmt: skip
        issue_id = issue.id
    routes = [("payment-status", "/payment/status", "payments")]
    draft_ms: list[float] = []
    read_ms: list[float] = []
    facts: dict[str, object] = {}
    for _ in range(args.runs):
        async with sessions() as session:
            found = await triage.get_issue(session=session, issue_id=issue_id)
            t0 = time.perf_counter()
            facts = await service.draft_facts(
                session=session, issue=found, config=ReviewConfig(), gateway_routes=routes
            )
            draft_ms.append((time.perf_counter() - t0) * 1000)
        async with sessions() as session:
            t0 = time.perf_counter()
            part = TelemetrySegmentRoute
            ids = list(
                await session.scalars(
                    select(part.batch_id)
                    .where(
                        part.route == "payment-status",
                        part.last_ts >= start + 1230 - 3600,  # the first signal - lookback
                        part.first_ts <= start + 2500,  # the resolution
                    )
                    .distinct()
                    .order_by(part.batch_id)
                )
            )
            for i in range(0, len(ids), service.BLOCKS_PER_READ):
                await load_blocks(session, ids[i : i + service.BLOCKS_PER_READ])
            read_ms.append((time.perf_counter() - t0) * 1000)
    await engine.dispose()
    radius = facts["blast_radius"]
    telemetry = facts["telemetry"]
    assert isinstance(radius, dict) and isinstance(telemetry, dict)
    draft, read = statistics.median(draft_ms), statistics.median(read_ms)
    print(f"store: {engine.dialect.name}; calls: {args.calls}; runs: {args.runs}")
    print(
        f"failed calls in the review: {radius['failed_calls']} "
        f"({radius['consumer_count']} consumers); blocks read: {telemetry['blocks_read']}"
    )
    print(f"draft (median): {draft:.0f} ms; reading every block of the range: {read:.0f} ms")
    print(f"ratio draft / read: {draft / read:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    asyncio.run(main(parser.parse_args()))

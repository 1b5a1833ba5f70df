"""Fill a hypercare store with a launch's worth of issues, through the tracker's service.

Used by the console page benchmark and the screenshot script. Issues are spread over the
past `days` with their real SLA states (refresh_sla runs at the end), transitions,
assignments and comments, so every page has realistic data to show.

`seed_week` adds what the telemetry and feedback pages read: a week of minute rollups for
the routes of `gateway_yaml` (hour rollups compacted from them as the console does), three
days of calls (the default call retention) with their errors, user reports, NPS/CSAT
answers and alert signals through the intake service, and a few integrations.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from hypercare.api.app import build_state
from hypercare.api.state import AppState
from hypercare.config import HypercareConfig, parse_config
from hypercare.feedback import integrations
from hypercare.feedback import service as feedback
from hypercare.feedback.drafts import SignalDraft
from hypercare.feedback.models import IntegrationCreate
from hypercare.gateway.records import CallRecord
from hypercare.store.base import utcnow
from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate
from hypercare.telemetry import segments
from hypercare.telemetry.aggregate import Aggregate
from hypercare.telemetry.collector import write_block
from hypercare.telemetry.compaction import rollup_hours
from hypercare.telemetry.jobs import collector_of
from hypercare.telemetry.models import TelemetryBatch, TelemetryMinute
from hypercare.triage import service
from hypercare.triage.models import IssueCreate
from hypercare.triage.rules import Status

TITLES = [
    "Card payment times out at checkout",
    "Order confirmation email not sent",
    "Search returns stale prices",
    "Login loop on Safari after password reset",
    "Invoice PDF misses VAT line",
    "Mobile app crashes when opening order history",
    "Delivery slot picker shows no slots",
    "Refund status stuck in pending",
    "Typo on pricing page",
    "CSV export is empty for large date ranges",
    "Push notifications arrive twice",
    "Address autocomplete slow in DE",
    "Loyalty points not credited",
    "Checkout button misaligned on small screens",
    "Webhook retries flood partner endpoint",
]
COMPONENTS = ["payments", "checkout", "search", "auth", "billing", "mobile", "delivery", "web"]
PEOPLE = ["dana", "li", "sam", "noor", "ines", None]
ROUTES = ["POST /api/payments", "GET /api/search", "POST /api/orders", "POST /api/login", None]


async def seed(
    data_dir: Path,
    count: int,
    days: float = 7,
    rng_seed: int = 7,
    routes: list[str | None] | None = None,
) -> int:
    """Create `count` issues in the SQLite store of `data_dir`; returns the last issue id.
    Their routes are drawn from `routes` (default `ROUTES`)."""
    routes = routes or ROUTES
    rng = random.Random(rng_seed)
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'hypercare.db'}")
    await migrate(engine)
    state = build_state(HypercareConfig(), engine)
    now = utcnow()
    last = 0
    try:
        for start in range(0, count, 200):
            async with state.sessions() as session, session.begin():
                for n in range(start, min(count, start + 200)):
                    # most recent issues last, so ids follow time like a real launch
                    age = timedelta(hours=days * 24 * (1 - (n + 1) / count) + rng.random())
                    opened = now - age
                    issue = await service.create_issue(
                        session=session,
                        matrix=state.matrix,
                        data=IssueCreate(
                            title=f"{rng.choice(TITLES)}",
                            description="Reported by several users after the launch.",
                            priority=rng.choices(["P1", "P2", "P3", "P4"], [1, 3, 6, 3])[0],
                            component=rng.choice(COMPONENTS),
                            route=rng.choice(routes),
                            assignee=rng.choice(PEOPLE),
                            labels=rng.sample(["launch", "customer", "regression", "ui"], 1),
                        ),
                        actor=rng.choice(["support-desk", "monitoring", "dana"]),
                        now=opened,
                    )
                    path = _path(rng, age)
                    at = opened
                    for to in path:
                        at = at + timedelta(minutes=rng.randint(3, 90))
                        if at >= now:
                            break
                        reason = "duplicate" if to in (Status.closed, Status.reopened) else None
                        await service.transition(
                            session=session,
                            matrix=state.matrix,
                            issue_id=issue.id,
                            to=to,
                            reason=reason,
                            actor="li",
                            now=at,
                        )
                    if rng.random() < 0.3:
                        service.record(
                            session,
                            issue,
                            actor="sam",
                            kind="comment",
                            text="Seen again by a customer this morning.",
                            at=min(now, at + timedelta(minutes=5)),
                        )
                    last = issue.id
        async with state.sessions() as session, session.begin():
            await service.refresh_sla(session=session, matrix=state.matrix, now=now)
    finally:
        await engine.dispose()
    return last


def _path(rng: random.Random, age: timedelta) -> list[Status]:
    S = Status
    if age < timedelta(hours=3):
        return rng.choice([[], [], [S.triaged], [S.investigating]])
    return rng.choice(
        [
            [S.triaged, S.investigating, S.mitigated, S.resolved, S.verified],
            [S.triaged, S.investigating, S.resolved],
            [S.investigating, S.resolved, S.verified, S.closed],
            [S.triaged],
            [S.investigating],
            [],
        ]
    )


# --- telemetry and signals ----------------------------------------------------------------

API_ROUTES = [
    ("catalog-search", "GET", "/catalog/search"),
    ("catalog-item", "GET", "/catalog/items/{id}"),
    ("catalog-reviews", "GET", "/catalog/items/{id}/reviews"),
    ("cart-get", "GET", "/cart"),
    ("cart-add", "POST", "/cart/items"),
    ("checkout", "POST", "/checkout"),
    ("order-create", "POST", "/orders"),
    ("order-detail", "GET", "/orders/{id}"),
    ("order-list", "GET", "/orders"),
    ("payment-create", "POST", "/payments"),
    ("payment-status", "GET", "/payment/status"),
    ("login", "POST", "/login"),
    ("profile", "GET", "/profile"),
    ("delivery-slots", "GET", "/delivery/slots"),
    ("invoice-pdf", "GET", "/invoices/{id}.pdf"),
]


def gateway_yaml(routes: list[tuple[str, str, str]] = API_ROUTES) -> str:
    """A config with `routes` behind one upstream (the console only reads their names)."""
    lines = [
        "web:\n  live_check_interval: 300ms\n  poll_interval: 1s\n",
        "gateway:\n  upstreams:\n    shop:\n      targets: ['127.0.0.1:9']\n  routes:\n",
    ]
    for name, method, path in routes:
        lines.append(
            f"    - name: {name}\n      match: {{path: '{path}', methods: [{method}]}}\n"
            "      upstream: shop\n"
        )
    return "".join(lines)


def _templates(rng: random.Random, n: int = 24) -> list[Aggregate]:
    """Minute aggregates of a few dozen to a few hundred calls with realistic histograms."""
    out = []
    for _ in range(n):
        agg = Aggregate()
        bad = rng.choice((0.002, 0.01, 0.03, 0.08))
        for _ in range(rng.randrange(40, 300)):
            status = 200 if rng.random() > bad else rng.choice((401, 429, 500, 502, 503))
            total = rng.lognormvariate(3.3, 0.9)
            agg.requests += 1
            agg.codes[status] = agg.codes.get(status, 0) + 1
            agg.c5xx += status >= 500
            agg.c4xx += 400 <= status < 500
            if status == 502:
                agg.upstream_errors += 1
                agg.errors["upstream_connect"] = agg.errors.get("upstream_connect", 0) + 1
            agg.bytes_in += 300
            agg.bytes_out += 2000
            agg.hist_total.add(total)
            agg.hist_upstream.add(total * 0.95)
            agg.hist_gateway.add(rng.uniform(0.05, 0.5))
        out.append(agg)
    return out


async def _telemetry(state: AppState, rng: random.Random, days: float, now: float) -> int:
    routes = [r.name for r in state.config.gateway.routes]
    tpl = [a.to_row("route", "", 0) for a in _templates(rng)]
    # closed minutes only: the current minute belongs to the live store
    last = int(now // 60) * 60 - 120
    minutes = int(days * 1440)
    written = 0
    async with state.engine.begin() as conn:
        rows = []
        for m in range(minutes):
            bucket = last - (minutes - 1 - m) * 60
            for k, route in enumerate(routes):
                row = dict(tpl[(m * 7 + k * 3) % len(tpl)])
                row.update(key=route, bucket=bucket)
                rows.append(row)
            if len(rows) >= 5000:
                await conn.execute(insert(TelemetryMinute), rows)
                written += len(rows)
                rows = []
        if rows:
            await conn.execute(insert(TelemetryMinute), rows)
            written += len(rows)
    collector = collector_of(state)
    while await rollup_hours(collector, now):
        pass
    return written


async def _calls(state: AppState, rng: random.Random, now: float, per_minute: int) -> int:
    """Three days of calls, `per_minute` per route and minute, a few percent failing,
    stored as the collector stores them, one block (batch) per minute; the batches count
    as aggregated (the rollups are seeded apart)."""
    routes = state.config.gateway.routes
    start = now - 3 * 86400
    written = 0
    sqlite = state.engine.dialect.name == "sqlite"
    async with state.engine.begin() as conn:

        async def store(records: list[CallRecord]) -> None:
            batch_id = await conn.scalar(
                insert(TelemetryBatch)
                .values(
                    batch_key=f"seed-{written:010d}",
                    node="seed",
                    received_at=records[-1].time,
                    records=len(records),
                    aggregated=True,
                )
                .returning(TelemetryBatch.id)
            )
            await write_block(conn, batch_id, segments.build(records, {}), sqlite=sqlite)

        records: list[CallRecord] = []
        for m in range(3 * 1440):
            for r in routes:
                for _ in range(per_minute):
                    ts = start + m * 60 + rng.random() * 60
                    fail = rng.random() < 0.04
                    status = rng.choice((500, 502, 503, 429)) if fail else 200
                    total = rng.lognormvariate(3.3, 0.9)
                    written += 1
                    records.append(
                        CallRecord(
                            time=ts,
                            route=r.name,
                            consumer=rng.choice(("shop-web", "shop-ios", "partner")),
                            method=r.match.methods[0] if r.match.methods else "GET",
                            path_template=r.match.path,
                            path=r.match.path.replace("{id}", str(rng.randrange(1, 9999))),
                            status=status,
                            request_bytes=300,
                            response_bytes=2000,
                            target="127.0.0.1:9",
                            gateway_ms=0.3,
                            upstream_ms=total * 0.95,
                            total_ms=total,
                            error="upstream_connect" if status == 502 else "",
                            client_ip="203.0.113.7",
                            request_id=f"req-{written:08d}",
                            trace_id=f"{written:032x}",
                            upstream="shop",
                            user_agent="bench",
                        )
                    )
            # one block per minute: a shipper sends what it has every 250 ms, so at this
            # rate (one call every two seconds) real blocks would be smaller still
            await store(records)
            records = []
        if records:
            await store(records)
    return written


REPORTS = [
    "Payment failed but my card was charged",
    "Search shows wrong prices",
    "Cannot log in after resetting my password",
    "Order confirmation never arrived",
    "Delivery slots are empty for tomorrow",
]


async def _signals(state: AppState, rng: random.Random, days: float, count: int) -> int:
    """User reports, survey answers and alert notifications over `days`, oldest first."""
    now = utcnow()
    routes = [r.name for r in state.config.gateway.routes]
    for start in range(0, count, 200):
        async with state.sessions() as session, session.begin():
            for n in range(start, min(count, start + 200)):
                at = now - timedelta(hours=days * 24 * (1 - (n + 1) / count))
                pick = rng.random()
                if pick < 0.4:
                    source = rng.choice(("nps", "csat"))
                    top = 10 if source == "nps" else 5
                    draft = SignalDraft(
                        kind="user",
                        source=source,
                        summary=f"{source.upper()} answer",
                        dedup_key=f"{source}:{n}",
                        raw={},
                        score=rng.randint(0, top),
                        create_issue=False,
                    )
                elif pick < 0.8:
                    draft = SignalDraft(
                        kind="user",
                        source="ticket",
                        summary=rng.choice(REPORTS),
                        body="The customer wrote to support.",
                        dedup_key=f"ticket:{n}",
                        raw={},
                        route=rng.choice(routes),
                    )
                else:
                    route = rng.choice(routes)
                    draft = SignalDraft(
                        kind="system",
                        source="alertmanager",
                        summary=f"High error rate on {route}",
                        dedup_key=f"alertmanager:errors:{route}",
                        raw={},
                        severity="warning",
                        status="firing",
                        route=route,
                    )
                await feedback.ingest(
                    session=session,
                    matrix=state.matrix,
                    priorities=state.config.feedback.priorities,
                    drafts=[draft],
                    attach=state.attach,
                    now=at,
                )
    return count


async def seed_week(
    data_dir: Path,
    *,
    days: float = 7,
    signals: int = 2000,
    calls_per_minute: int = 2,
    rng_seed: int = 11,
) -> dict[str, int]:
    """Telemetry, calls, signals and integrations in the store of `data_dir`, whose
    `hypercare.yaml` (see `gateway_yaml`) declares the routes."""
    rng = random.Random(rng_seed)
    config = parse_config((data_dir / "hypercare.yaml").read_text(), "hypercare.yaml")
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'hypercare.db'}")
    await migrate(engine)
    state = build_state(config, engine)
    now = time.time()
    try:
        minutes = await _telemetry(state, rng, days, now)
        calls = await _calls(state, rng, now, calls_per_minute)
        await _signals(state, rng, days, signals)
        async with state.sessions() as session, session.begin():
            for kind in ("alertmanager", "sentry", "datadog", "cloudwatch", "pagerduty"):
                await integrations.create(
                    session=session,
                    config=state.config.feedback,
                    data=IntegrationCreate.model_validate({"type": kind, "name": f"{kind} prod"}),
                    actor="bench",
                    base="http://127.0.0.1",
                )
        # fold the seed's write-ahead log into the database: the server would otherwise
        # start by checkpointing hundreds of megabytes while the pages are being timed
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await engine.dispose()
    return {"minute_rollups": minutes, "calls": calls, "signals": signals}


if __name__ == "__main__":
    import sys

    print(asyncio.run(seed(Path(sys.argv[1]), int(sys.argv[2]))))

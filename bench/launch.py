"""Launch benchmark: exit check over a 4-week launch with 100 routes (goal < 1 s), the final
report (goal < 5 s) and one burn-rate evaluation cycle over 100 SLOs.

    .venv/bin/python bench/launch.py [--routes 100] [--runs 5] [--postgres]

Seeds 28 days of hour rollups and the last 6 hours of minute rollups per route (the shape
the store has after compaction: minutes older than the rolled hours are only read when the
hours are missing), 600 issues over the launch, and a launch with one availability SLO per
route (half of them latency SLOs) and every kind of exit criterion. The reference, measured
in the same run: the 28-day routes table (`query.collect` over every route, counters only),
the one query the launch work cannot do without.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from hypercare.config import HypercareConfig, parse_config
from hypercare.launch import jobs, report, service
from hypercare.launch.rules import burn_alert
from hypercare.store.db import create_engine, session_factory
from hypercare.store.migrate import migrate
from hypercare.telemetry import query
from hypercare.telemetry.aggregate import Aggregate
from hypercare.telemetry.collector import HOURS_UNTIL
from hypercare.telemetry.histcache import HistogramCache
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.models import TelemetryHour, TelemetryMinute, TelemetryState
from hypercare.triage.models import Issue

DAYS = 28


def config_text(routes: int, start: datetime) -> str:
    lines = ["gateway:", "  upstreams:", "    up: {targets: ['127.0.0.1:9']}", "  routes:"]
    for k in range(routes):
        lines += [
            f"    - name: route-{k:03d}",
            f"      match: {{path: /r{k}}}",
            "      upstream: up",
            f"      tags: {{component: comp-{k % 10}}}",
        ]
    lines += [
        "launches:",
        "  - name: big",
        f"    start: {start.isoformat()}",
        f"    end: {(start + timedelta(days=DAYS)).isoformat()}",
        "    components: [" + ", ".join(f"comp-{i}" for i in range(10)) + "]",
        "    slos:",
    ]
    for k in range(routes):
        if k % 2:
            lines.append(
                f"      - {{name: lat-{k:03d}, route: route-{k:03d}, kind: latency,"
                " threshold: 300ms, target: 95}"
            )
        else:
            lines.append(f"      - {{name: av-{k:03d}, route: route-{k:03d}, target: 99.5}}")
    lines += [
        "    exit_criteria:",
        "      - no_open: [P1, P2]",
        "      - no_new: {priority: [P1], for: 72h}",
        "      - slo_met: {for: 48h}",
        "      - tickets_per_day: {max: 30}",
        "      - nps: {min: 20}",
        "      - metric: {route: route-000, metric: p95, max: 800, window: 24h}",
    ]
    return "\n".join(lines) + "\n"


def templates(n: int = 20) -> list[dict[str, object]]:
    rng = random.Random(7)
    out = []
    for _ in range(n):
        agg = Aggregate()
        for _ in range(rng.randrange(200, 500)):
            status = 200 if rng.random() < 0.995 else 503
            ms = rng.lognormvariate(4, 0.8)
            agg.requests += 1
            agg.codes[status] = agg.codes.get(status, 0) + 1
            agg.c5xx += status >= 500
            agg.hist_total.add(ms)
            agg.hist_upstream.add(ms * 0.95)
            agg.hist_gateway.add(rng.uniform(0.05, 0.5))
        out.append(agg.to_row("route", "", 0))
    return out


async def seed(url: str, routes: int, now: datetime, schema: str | None) -> None:
    engine = create_engine(url, **_pg_args(schema))
    await migrate(engine)
    tpl = templates()
    t = int(now.timestamp())
    # as the store is after compaction: hours rolled up to the last whole hour, and the
    # minute rollups of the last 6 h kept next to them (the burn-rate windows read those)
    rolled = t // 3600 * 3600
    first = rolled - DAYS * 86400
    cut = rolled - 6 * 3600
    hours, minutes = [], []
    for h in range(DAYS * 24):
        for k in range(routes):
            row = dict(tpl[(h * 3 + k) % len(tpl)])
            row.update(key=f"route-{k:03d}", bucket=first + h * 3600)
            hours.append(row)
    for m in range((t - cut) // 60):
        for k in range(routes):
            row = dict(tpl[(m * 5 + k) % len(tpl)])
            row.update(key=f"route-{k:03d}", bucket=cut + m * 60)
            minutes.append(row)
    rng = random.Random(3)
    issues = []
    for i in range(600):
        created = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
        issues.append(
            {
                "title": f"issue {i}",
                "description": "",
                "priority": rng.choice(("P1", "P2", "P3", "P3", "P4")),
                "status": rng.choice(("resolved", "closed", "verified", "new")),
                "component": f"comp-{i % 10}",
                "route": f"route-{i % routes:03d}",
                "labels": [],
                "reporter": "bench",
                "created_at": created,
                "updated_at": created,
                "detected_at": created,
                "impact_started_at": created - timedelta(minutes=rng.uniform(1, 20)),
                "acknowledged_at": created + timedelta(minutes=rng.uniform(1, 30)),
                "resolved_at": created + timedelta(hours=rng.uniform(1, 40)),
                "sla_state": "ok",
                "escalation_level": 0,
                "reopen_count": 0,
            }
        )
    async with engine.begin() as conn:
        for table, rows in ((TelemetryHour, hours), (TelemetryMinute, minutes)):
            for i in range(0, len(rows), 5000):
                await conn.execute(insert(table), rows[i : i + 5000])
        await conn.execute(insert(Issue), issues)
        await conn.execute(insert(TelemetryState), [{"name": HOURS_UNTIL, "value": rolled}])
    await engine.dispose()
    print(f"seeded {len(hours)} hour rows, {len(minutes)} minute rows, {len(issues)} issues")


def _pg_args(schema: str | None) -> dict[str, object]:
    if schema is None:
        return {}
    return {"connect_args": {"server_settings": {"search_path": schema}}}


async def timed(make: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await make()
        out.append(time.perf_counter() - started)
    return out


async def bench(
    url: str, routes: int, runs: int, schema: str | None, profile: str | None = None
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=DAYS - 1)
    config: HypercareConfig = parse_config(config_text(routes, start), "<bench>")
    await seed(url, routes, now, schema)
    engine = create_engine(url, **_pg_args(schema))
    sessions = session_factory(engine)
    launch = service.find(config, "big")
    comps = service.route_components(config)
    # one live store, as the console has: its cache keeps decoded histograms between reads
    # (the CLI starts with an empty one: the "cold" column)
    live = LiveStore()

    async def reference() -> None:
        async with sessions() as s:
            t = now.timestamp()
            await query.collect(s, live, dim="route", start=t - DAYS * 86400, end=t, histograms=())

    async def exit_check() -> None:
        async with sessions() as s:
            await service.exit_check(
                session=s, live=live, config=config, name="big", now=now, store=False
            )

    async def final_report() -> None:
        async with sessions() as s:
            data = await service.load_report(
                session=s, live=live, config=config, name="big", kind="final", now=now
            )
            report.html(data)
            report.markdown(data)

    async def burn_cycle() -> None:
        async with sessions() as s:
            t = now.timestamp()
            points = await service.burn_points(
                session=s, live=live, slos=launch.slos, route_components=comps, now=t
            )
            for slo in launch.slos:
                burn_alert(points.get(slo.name, []), target=slo.target, now=t)

    if profile is not None:
        import cProfile
        import pstats

        step = {"exit": exit_check, "report": final_report, "burn": burn_cycle}[profile]
        await step()
        prof = cProfile.Profile()
        prof.enable()
        await step()
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        await engine.dispose()
        return
    results = {}
    cold = {}
    for name, fn in (
        ("reference: 28-day routes table", reference),
        ("exit check (6 criteria, 100 SLOs)", exit_check),
        ("final report (HTML + Markdown)", final_report),
        (f"burn-rate cycle ({len(launch.slos)} SLOs)", burn_cycle),
    ):
        live.histograms = HistogramCache(64 << 20)
        cold[name] = (await timed(fn, 1))[0]  # empty histogram cache, as the CLI
        results[name] = statistics.median(await timed(fn, runs))
    ref = results["reference: 28-day routes table"]
    goals = {"exit check": 1.0, "final report": 5.0}
    print(f"{engine.dialect.name}, {routes} routes, {DAYS}-day launch, median of {runs} runs:")
    for name, seconds in results.items():
        goal = next((g for k, g in goals.items() if name.startswith(k)), None)
        extra = f"; goal {goal:.0f} s: {seconds / goal:.2f} of it" if goal else ""
        print(
            f"  {name:<36} warm {seconds * 1000:8.1f} ms ({seconds / ref:.2f}× reference{extra});"
            f" cold {cold[name] * 1000:.0f} ms ({cold[name] / ref:.2f}×)"
        )
    print(f"  burn-rate loop every {jobs.INTERVAL:.0f} s: {results[name] / jobs.INTERVAL:.4f} busy")
    await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--routes", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--profile", help="profile this step (exit, report, burn) and exit")
    args = ap.parse_args()
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        url = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

        async def go() -> None:
            admin = create_engine(url)
            async with admin.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                await bench(url, args.routes, args.runs, schema, args.profile)
            finally:
                async with admin.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                await admin.dispose()

        asyncio.run(go())
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(bench(url, args.routes, args.runs, None, args.profile))


if __name__ == "__main__":
    main()

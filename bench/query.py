"""Query benchmark: `GET /analytics/routes` over 24 h and a 24 h `GET /analytics/timeseries`
(1-minute step) over 50 routes of one-minute rollups, through the real HTTP app.

    .venv/bin/python bench/query.py [--routes 50] [--runs 50] [--postgres]

Seeds 24 h of minute rollups per route (realistic latency histograms of ~100 buckets),
runs the hour compaction as the console would, then times each request: the first one
with an empty histogram cache (cold), the others warm.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import insert, text

from hypercare.api.app import build_state, create_app
from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig
from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate
from hypercare.telemetry.aggregate import Aggregate
from hypercare.telemetry.compaction import rollup_hours
from hypercare.telemetry.jobs import collector_of
from hypercare.telemetry.models import TelemetryMinute


def templates(n: int = 30) -> list[Aggregate]:
    """Aggregates of a few hundred calls each, as a busy route has in one minute."""
    rng = random.Random(5)
    out = []
    for _ in range(n):
        agg = Aggregate()
        for _ in range(rng.randrange(200, 600)):
            status = 200 if rng.random() < 0.97 else rng.choice((401, 429, 500, 503))
            total = rng.lognormvariate(3, 1.2)
            agg.requests += 1
            agg.codes[status] = agg.codes.get(status, 0) + 1
            agg.c5xx += status >= 500
            agg.c4xx += 400 <= status < 500
            agg.hist_total.add(total)
            agg.hist_upstream.add(total * 0.95)
            agg.hist_gateway.add(rng.uniform(0.05, 0.5))
        out.append(agg)
    return out


async def seed(state: AppState, routes: int, now: float) -> int:
    tpl = [a.to_row("route", "", 0) for a in templates()]
    start = int(now // 60) * 60 - 24 * 3600
    rows = []
    for m in range(24 * 60):
        for k in range(routes):
            row = dict(tpl[(m * 7 + k) % len(tpl)])
            row.update(key=f"route-{k:02d}", bucket=start + m * 60)
            rows.append(row)
    async with state.engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            await conn.execute(insert(TelemetryMinute), rows[i : i + 5000])
    await rollup_hours(collector_of(state), now)
    return len(rows)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


async def bench(url: str, routes: int, runs: int, schema: str | None) -> None:
    kwargs = {"connect_args": {"server_settings": {"search_path": schema}}} if schema else {}
    engine = create_engine(url, **kwargs)
    await migrate(engine)
    state = build_state(HypercareConfig(), engine)
    async with state.sessions() as s, s.begin():
        token = (await auth_service.create_token(session=s, name="b", role=Role.viewer)).token
    now = time.time()
    n = await seed(state, routes, now)
    app = create_app(state, background=False)
    gc.freeze()  # as the console's start does (api/app.py); the seed data stays collectable
    headers = {"Authorization": f"Bearer {token}"}
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 24 * 3600))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    cases = {
        "analytics/routes 24h": ("/api/v1/analytics/routes", {"from": frm, "to": to}),
        "analytics/routes 1h": ("/api/v1/analytics/routes", {}),
        "timeseries 24h p95 1m": (
            "/api/v1/analytics/timeseries",
            {"route": "route-07", "metric": "p95", "from": frm, "to": to, "step": "1m"},
        ),
        "timeseries 24h requests 1m": (
            "/api/v1/analytics/timeseries",
            {"route": "route-07", "metric": "requests", "from": frm, "to": to, "step": "1m"},
        ),
    }
    print(
        f"{engine.dialect.name}: {n:,} minute rollups ({routes} routes x 24 h), "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as client:
        for name, (path, params) in cases.items():
            samples = []
            cpu = []
            for _ in range(runs):
                t, c = time.perf_counter(), time.process_time()
                r = await client.get(path, params=params, headers=headers)
                samples.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
                r.raise_for_status()
            # the first request of each case reads and decodes its histograms from the
            # store (cold cache); the others find them decoded in the histogram cache, as
            # the console's repeated queries (pages, live updates, rules) do. CPU time of
            # this process (all threads, SQLite's included): on an idle machine the
            # latency of a SQLite query is close to it
            warm, warm_cpu = samples[1:], cpu[1:]
            print(
                f"  {name:28s} cold {samples[0]:6.1f} ms (cpu {cpu[0]:6.1f}) | warm wall p50 "
                f"{statistics.median(warm):6.1f} p95 {p95(warm):6.1f} ms | cpu p50 "
                f"{statistics.median(warm_cpu):6.1f} p95 {p95(warm_cpu):6.1f} ms"
            )
    await engine.dispose()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=50)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await bench(f"sqlite+aiosqlite:///{Path(tmp) / 'q.db'}", args.routes, args.runs, None)
    if args.postgres:
        pg = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(pg)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            await bench(pg, args.routes, args.runs, schema)
        finally:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())

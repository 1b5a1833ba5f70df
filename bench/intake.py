"""Sustained signal intake on SQLite with dedup.

Posts Alertmanager notifications (``--batch`` alerts each, fingerprints cycling over
``--keys`` distinct keys, so most signals deduplicate into open issues) or single
PagerDuty v2 events (``--mode pagerduty``) to the console for ``--seconds``, with
``--concurrency`` requests in flight, then checks the store and prints signals/s.

    python bench/intake.py                     # in-process app (ASGI), SQLite in a temp dir
    python bench/intake.py --http              # real `hypercare up` on loopback, over HTTP
    python bench/intake.py --mode pagerduty --http
    python bench/intake.py --http --database-url postgresql://postgres@127.0.0.1:5432/test

``cpu_ms_per_signal`` is the CPU time (user + system) the console spent per signal during the
measured run (in-process: the whole process, client included; over HTTP: the `hypercare up`
process only, read from /proc), so a noisy machine shows up as a lower rate at the same cost.
With ``--database-url`` (a PostgreSQL server) the benchmark creates a scratch database on that
server, runs against it and drops it afterwards.

Exit status 1 when the rate is under ``--target`` (default 500 signals/s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from hypercare.api.app import build_state, create_app
from hypercare.config import HypercareConfig
from hypercare.feedback.config import FeedbackConfig, IntegrationSettings
from hypercare.feedback.models import Signal, SignalGroup
from hypercare.store.db import create_engine, database_url
from hypercare.store.migrate import migrate
from hypercare.triage.models import Issue

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import start_up

TOKEN = "bench-intake-token-0123456789"


def _am_body(start: int, batch: int, keys: int) -> bytes:
    alerts = []
    for i in range(start, start + batch):
        k = i % keys
        alerts.append(
            {
                "status": "firing",
                "labels": {
                    "alertname": f"Bench{k}",
                    "instance": f"host-{k}",
                    "severity": "warning",
                },
                "annotations": {"summary": f"bench alert {k}"},
                "startsAt": "2026-11-27T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"bench{k:08d}",
            }
        )
    return json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()


def _pd_body(i: int, keys: int) -> bytes:
    k = i % keys
    return json.dumps(
        {
            "routing_key": TOKEN,
            "event_action": "trigger",
            "dedup_key": f"bench-{k}",
            "payload": {"summary": f"bench event {k}", "source": "bench", "severity": "warning"},
        }
    ).encode()


async def _drive(client: httpx.AsyncClient, args: argparse.Namespace) -> dict[str, Any]:
    url = "/api/v1/integrations/{}/{}".format(
        "pd" if args.mode == "pagerduty" else "am",
        "v2/enqueue" if args.mode == "pagerduty" else "webhook",
    )
    per_request = 1 if args.mode == "pagerduty" else args.batch
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    # warm-up: one pass over every key opens its issue; the measured run is steady state
    warm_started = time.perf_counter()
    for n in range(0, args.keys, per_request):
        body = (
            _pd_body(n, args.keys)
            if args.mode == "pagerduty"
            else _am_body(n, args.batch, args.keys)
        )
        r = await client.post(url, content=body, headers=headers)
        if r.status_code != 202:
            raise SystemExit(f"warm-up failed: {r.status_code} {r.text}")
    warmup_s = time.perf_counter() - warm_started
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + args.seconds

    async def worker() -> None:
        nonlocal counter, errors
        while time.perf_counter() < deadline:
            n = counter
            counter += per_request
            body = (
                _pd_body(n, args.keys)
                if args.mode == "pagerduty"
                else _am_body(n, args.batch, args.keys)
            )
            t0 = time.perf_counter()
            r = await client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 202:
                errors += 1

    cpu = args.cpu_clock
    started, cpu_started = time.perf_counter(), cpu()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed, cpu_used = time.perf_counter() - started, cpu() - cpu_started
    ok = len(latencies) - errors
    latencies.sort()
    return {
        "warmup_signals": args.keys,
        "warmup_s": round(warmup_s, 2),
        "requests": len(latencies),
        "errors": errors,
        "signals_sent": ok * per_request,
        "elapsed_s": round(elapsed, 2),
        "signals_per_s": round(ok * per_request / elapsed, 1),
        "cpu_ms_per_signal": round(cpu_used * 1000 / max(ok * per_request, 1), 2),
        "load_average": os.getloadavg()[0],
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else None,
    }


def _config() -> HypercareConfig:
    return HypercareConfig(
        feedback=FeedbackConfig(
            integrations=[
                IntegrationSettings(id="am", type="alertmanager", token=TOKEN),
                IntegrationSettings(id="pd", type="pagerduty", token=TOKEN),
            ]
        )
    )


async def _count(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            signals = await conn.scalar(select(func.count()).select_from(Signal)) or 0
            issues = await conn.scalar(select(func.count()).select_from(Issue)) or 0
            groups = await conn.scalar(select(func.max(SignalGroup.count))) or 0
    finally:
        await engine.dispose()
    return {"signals_stored": signals, "issues": issues, "max_dedup_count": groups}


@contextlib.asynccontextmanager
async def _scratch_database(server: str | None, data: Path) -> AsyncIterator[str]:
    """The async URL of an empty store: a SQLite file in `data`, or a database created on the
    PostgreSQL `server` for this run and dropped afterwards."""
    if server is None:
        yield database_url(data, None)
        return
    url = make_url(database_url(data, server))
    name = f"hc_bench_intake_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def in_process(args: argparse.Namespace, url: str) -> dict[str, Any]:
    engine = create_engine(url)
    await migrate(engine)
    app = create_app(build_state(_config(), engine), background=False)
    transport = httpx.ASGITransport(app=app)
    args.cpu_clock = time.process_time
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        result = await _drive(client, args)
    await engine.dispose()
    return result | await _count(url)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def over_http(args: argparse.Namespace, data: Path, url: str) -> dict[str, Any]:
    cfg = data / "hc.yaml"
    cfg.write_text(
        "feedback:\n  integrations:\n"
        f"    - {{id: am, type: alertmanager, token: {TOKEN}}}\n"
        f"    - {{id: pd, type: pagerduty, token: {TOKEN}}}\n"
    )
    # the gateway runs as users run it, on ports of its own (start_up binds free ones)
    up = await asyncio.to_thread(
        start_up,
        data / "up",
        config=cfg,
        args=["--database-url", url],
        env={"HYPERCARE_ADMIN_TOKEN": "hc_bench-admin-token"},
        timeout=30,
    )
    args.cpu_clock = lambda: _cpu_seconds(up.proc.pid)
    try:
        async with httpx.AsyncClient(base_url=up.url, timeout=30) as client:
            result = await _drive(client, args)
    finally:
        await asyncio.to_thread(up.stop, timeout=20)
    return result | await _count(url)


async def run(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    async with _scratch_database(args.database_url, data) as url:
        if args.http:
            return await over_http(args, data, url)
        return await in_process(args, url)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["alertmanager", "pagerduty"], default="alertmanager")
    parser.add_argument(
        "--http", action="store_true", help="run `hypercare up` and post over loopback"
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--batch", type=int, default=10, help="alerts per Alertmanager notification"
    )
    parser.add_argument("--keys", type=int, default=200, help="distinct dedup keys")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--target", type=float, default=500)
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (postgresql://user@host:5432/db) to create a scratch "
        "database on, instead of SQLite",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    result |= {
        "mode": args.mode,
        "transport": "http" if args.http else "asgi",
        "store": "postgresql" if args.database_url else "sqlite",
        "batch": args.batch,
        "keys": args.keys,
        "concurrency": args.concurrency,
    }
    print(json.dumps(result, indent=2))
    ok = result["signals_per_s"] >= args.target and result["errors"] == 0
    ok = ok and result["signals_stored"] == result["signals_sent"] + result["warmup_signals"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

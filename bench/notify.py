"""Notifications: from the commit that opens a P1 to its first delivery, and dispatcher
throughput, against a local webhook receiver.

    python bench/notify.py                   # SQLite in a temp dir
    python bench/notify.py --issues 200 --deliveries 5000
    python bench/notify.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

1. Latency: ``--issues`` P1 issues are opened one after the other (each its own
   transaction, ``--gap`` apart) while the console's response loop runs as in `hypercare
   up`; the receiver stamps each arrival. Reported: p50/p99 of arrival - commit.
2. Throughput: ``--deliveries`` due deliveries are written at once and the dispatcher sends
   them all; reported: deliveries/s until every one is stored as sent. The reference is the
   same number of POSTs made straight with httpx at the same concurrency, so the ratio shows
   the dispatcher's own cost (store reads and writes, timeline entries).

The receiver runs in its own thread and event loop (a separate stack, as a real receiver
would be). Loopback only; the run stops by itself. Exit status 1 when the p99 is over
``--p99-target`` (1 s) or the rate under ``--rate-target`` (1,000/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

from hypercare.api.app import build_state
from hypercare.api.state import AppState
from hypercare.config import parse_config
from hypercare.demo.http import Request, Response, serve
from hypercare.response import jobs
from hypercare.response.models import Delivery
from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate


class Receiver:
    """A webhook receiver in its own process (its own interpreter and event loop, as a real
    receiver would be); records when each issue arrived on the system-wide monotonic clock
    and reports the arrivals at GET /stats."""

    def __init__(self) -> None:
        self.port = 0
        self.arrived: dict[int, float] = {}
        parent, child = multiprocessing.Pipe()
        self.pipe = parent
        self.proc = multiprocessing.Process(target=_receive, args=(child,), daemon=True)

    def start(self) -> None:
        self.proc.start()
        if not self.pipe.poll(30):
            raise RuntimeError("the receiver did not start")
        self.port = int(self.pipe.recv())

    async def refresh(self) -> None:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{self.port}/stats")
        self.arrived = {int(k): float(v) for k, v in r.json().items()}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(5)


def _receive(pipe: Any) -> None:
    arrived: dict[int, float] = {}

    async def handle(req: Request) -> Response:
        if req.path == "/stats":
            return Response(200, json.dumps(arrived).encode())
        if req.path == "/hook":
            issue_id = int(json.loads(req.body)["issue"]["id"])
            arrived.setdefault(issue_id, time.monotonic())
        return Response(204)

    async def main() -> None:
        server = await serve(handle, "127.0.0.1", 0)
        pipe.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def config_text(url: str) -> str:
    return f"""
response:
  base_url: http://127.0.0.1:8700
  channels:
    - {{name: bench-hook, type: webhook, url: '{url}'}}
  rules:
    - {{match: {{priority: [P1], events: [created]}}, notify: [bench-hook]}}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency(state: AppState, receiver: Receiver, issues: int, gap: float) -> list[float]:
    committed: dict[int, float] = {}
    for i in range(issues):
        async with state.sessions() as s, s.begin():
            issue = await triage.create_issue(
                session=s,
                matrix=state.matrix,
                data=IssueCreate(title=f"bench P1 {i}", priority="P1"),
                actor="bench",
            )
        committed[issue.id] = time.monotonic()
        await asyncio.sleep(gap)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        await receiver.refresh()
        if len(receiver.arrived) >= issues:
            break
        await asyncio.sleep(0.1)
    return [receiver.arrived[i] - t for i, t in committed.items() if i in receiver.arrived]


async def throughput(state: AppState, receiver: Receiver, n: int) -> float:
    async with state.sessions() as s, s.begin():
        issue = await triage.create_issue(
            session=s,
            matrix=state.matrix,
            data=IssueCreate(title="throughput", priority="P4"),
            actor="bench",
        )
        now = issue.created_at
        message = {
            "event": "created",
            "issue_id": issue.id,
            "title": "throughput",
            "priority": "P4",
            "status": "new",
            "at": now.isoformat(),
            "issue_url": "http://127.0.0.1:8700/issues/1",
            "ack_url": "http://127.0.0.1:8700/ack/x",
        }
        s.add_all(
            Delivery(
                issue_id=issue.id,
                entry_id=-(i + 1),  # not timeline entries: only unique per channel
                event="created",
                channel="bench-hook",
                channel_type="webhook",
                recipient="bench",
                message=message,
                state="pending",
                attempts=0,
                idempotency_key=uuid.uuid4().hex,
                created_at=now,
                next_attempt_at=now,
            )
            for i in range(n)
        )
    started = time.monotonic()
    jobs.runtime(state).wake.set()
    deadline = started + 300
    sent = 0
    while time.monotonic() < deadline:
        async with state.sessions() as s:
            sent = (
                await s.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.state == "sent")
                )
                or 0
            )
        if sent >= n:
            break
        await asyncio.sleep(0.05)
    return sent / (time.monotonic() - started)


async def reference(url: str, n: int, concurrency: int) -> float:
    body = json.dumps({"issue": {"id": 0}}).encode()
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
    ) as client:

        async def one() -> None:
            async with sem:
                await client.post(url, content=body)

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.monotonic() - started)


async def main(args: argparse.Namespace) -> int:
    receiver = Receiver()
    receiver.start()
    url = f"http://127.0.0.1:{receiver.port}/hook"
    tmp = tempfile.TemporaryDirectory()
    schema = None
    if args.database_url:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.database_url)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = create_engine(
            args.database_url, connect_args={"server_settings": {"search_path": schema}}
        )
    else:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.db'}")
    await migrate(engine)
    state = build_state(parse_config(config_text(url), "bench"), engine)
    await jobs.start(state)
    stop = asyncio.Event()
    loop_task = asyncio.create_task(jobs.run_response(state, stop))
    try:
        delays = await latency(state, receiver, args.issues, args.gap)
        rate = await throughput(state, receiver, args.deliveries)
    finally:
        stop.set()
        await loop_task
        await engine.dispose()
        if schema:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()
        tmp.cleanup()
    ref = await reference(
        url.replace("/hook", "/ref"),
        args.deliveries,
        state.config.response.dispatch.concurrency,
    )
    receiver.stop()
    p50, p99 = pct(delays, 0.50), pct(delays, 0.99)
    result = {
        "store": engine.dialect.name,
        "issues": args.issues,
        "delivered": len(delays),
        "commit_to_delivery_p50_ms": round(p50 * 1000, 1),
        "commit_to_delivery_p99_ms": round(p99 * 1000, 1),
        "commit_to_delivery_mean_ms": round(statistics.fmean(delays) * 1000, 1),
        "dispatcher_deliveries_per_s": round(rate),
        "reference_plain_posts_per_s": round(ref),
        "dispatcher_vs_reference": round(rate / ref, 2),
    }
    print(json.dumps(result, indent=2))
    ok = len(delays) == args.issues and p99 <= args.p99_target and rate >= args.rate_target
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between P1s")
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--p99-target", type=float, default=1.0)
    parser.add_argument("--rate-target", type=float, default=1000.0)
    sys.exit(asyncio.run(main(parser.parse_args())))

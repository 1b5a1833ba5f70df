"""Notifications: from the commit that opens a P1 to its first delivery, and dispatcher
throughput, against a local webhook receiver.

    python bench/notify.py                   # SQLite in a temp dir
    python bench/notify.py --issues 200 --deliveries 5000
    python bench/notify.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

1. Latency: ``--issues`` P1 issues are opened one after the other (each its own
   transaction, ``--gap`` apart) while the console's response loop runs as in `hypercare
   up`; the receiver stamps each arrival. Reported: p50/p99 of arrival - commit.
2. Throughput, ``--runs`` times (medians reported): ``--deliveries`` due deliveries are
   written at once and the dispatcher sends them all; reported: deliveries/s until every one
   is stored as sent, and this process's CPU time per delivery (sends, store reads and
   writes, timeline entries; the receiver runs elsewhere). References in the same run: as
   many POSTs made straight through the dispatcher's own client (`new_client()`, same
   concurrency), so the ratio shows what the store adds; and ``--plain-posts`` POSTs through
   httpx's default transport (httpcore), which the dispatcher used before.

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
from hypercare.response.channels import new_client
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


def config_text(url: str, concurrency: int = 64, batch: int = 500) -> str:
    return f"""
response:
  base_url: http://127.0.0.1:8700
  channels:
    - {{name: bench-hook, type: webhook, url: '{url}'}}
  rules:
    - {{match: {{priority: [P1], events: [created]}}, notify: [bench-hook]}}
  dispatch: {{concurrency: {concurrency}, batch: {batch}}}
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


async def throughput(state: AppState, n: int) -> tuple[float, float]:
    """(deliveries/s, CPU seconds of this process per delivery)."""
    async with state.sessions() as s, s.begin():
        # an earlier run's rows are all sent: count only this run's
        await s.execute(text("DELETE FROM response_deliveries WHERE entry_id < 0"))
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

    started, cpu = time.monotonic(), time.process_time()
    jobs.nudge(state)
    deadline = started + 300
    sent = 0
    while time.monotonic() < deadline:
        async with state.sessions() as s:
            sent = (
                await s.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.state == "sent", Delivery.entry_id < 0)
                )
                or 0
            )
        if sent >= n:
            break
        await asyncio.sleep(0.05)
    return sent / (time.monotonic() - started), (time.process_time() - cpu) / max(1, sent)


async def reference(
    client: httpx.AsyncClient, url: str, n: int, concurrency: int
) -> tuple[float, float]:
    """`n` POSTs straight through `client` at `concurrency`: (posts/s, CPU s per post)."""
    body = json.dumps({"issue": {"id": 0}}).encode()
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await client.post(url, content=body, headers={"Content-Type": "application/json"})

    await asyncio.gather(*(one() for _ in range(min(n, 50))))  # connections opened
    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.monotonic() - started), (time.process_time() - cpu) / n


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
    state = build_state(
        parse_config(config_text(url, args.concurrency, args.batch), "bench"), engine
    )
    await jobs.start(state)
    stop = asyncio.Event()
    loop_task = asyncio.create_task(jobs.run_response(state, stop))
    concurrency = state.config.response.dispatch.concurrency
    ref_url = url.replace("/hook", "/ref")
    runs: list[dict[str, float]] = []
    try:
        delays = await latency(state, receiver, args.issues, args.gap)
        for _ in range(args.runs):
            rate, cpu = await throughput(state, args.deliveries)
            # the same one client the dispatcher sends through, without the store
            async with new_client(max_connections=concurrency) as client:
                same, same_cpu = await reference(client, ref_url, args.deliveries, concurrency)
            # httpx's default transport (httpcore), which the dispatcher used before
            async with httpx.AsyncClient(
                limits=httpx.Limits(max_connections=concurrency), trust_env=False
            ) as client:
                plain, _ = await reference(
                    client, ref_url, min(args.deliveries, args.plain_posts), concurrency
                )
            runs.append(
                {"rate": rate, "cpu": cpu, "same": same, "same_cpu": same_cpu, "plain": plain}
            )
    finally:
        stop.set()
        await loop_task
        await engine.dispose()
        if schema:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()
        tmp.cleanup()
    receiver.stop()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    p50, p99 = pct(delays, 0.50), pct(delays, 0.99)
    rate = med("rate")
    result = {
        "store": engine.dialect.name,
        "issues": args.issues,
        "delivered": len(delays),
        "commit_to_delivery_p50_ms": round(p50 * 1000, 1),
        "commit_to_delivery_p99_ms": round(p99 * 1000, 1),
        "commit_to_delivery_mean_ms": round(statistics.fmean(delays) * 1000, 1),
        "runs": args.runs,
        "deliveries_per_run": args.deliveries,
        "dispatcher_deliveries_per_s": round(rate),
        "dispatcher_deliveries_per_s_each_run": [round(r["rate"]) for r in runs],
        "dispatcher_cpu_us_per_delivery": round(med("cpu") * 1e6),
        "reference_same_client_posts_per_s": round(med("same")),
        "reference_same_client_cpu_us_per_post": round(med("same_cpu") * 1e6),
        "dispatcher_vs_same_client": round(
            statistics.median(r["rate"] / r["same"] for r in runs), 2
        ),
        "reference_httpx_default_posts_per_s": round(med("plain")),
        "dispatcher_vs_httpx_default": round(
            statistics.median(r["rate"] / r["plain"] for r in runs), 2
        ),
    }
    print(json.dumps(result, indent=2))
    ok = len(delays) == args.issues and p99 <= args.p99_target and rate >= args.rate_target
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between P1s")
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3, help="throughput runs (median)")
    parser.add_argument("--concurrency", type=int, default=64, help="response.dispatch")
    parser.add_argument("--batch", type=int, default=500, help="response.dispatch")
    parser.add_argument(
        "--plain-posts", type=int, default=1000, help="posts of the httpx-default reference"
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--p99-target", type=float, default=1.0)
    parser.add_argument("--rate-target", type=float, default=1000.0)
    sys.exit(asyncio.run(main(parser.parse_args())))

"""Escalation step lateness: how long after its due time each escalation step runs.

    .venv/bin/python bench/escalation.py [--issues 50] [--steps 3] [--wait 1.0]

A fresh SQLite store in a temporary directory and the response loop (`run_response`, the
job `hypercare up` runs) with an in-memory notifier. `--issues` P1 issues are opened, a few
at a time; each starts a policy of `--steps` steps `--wait` seconds apart (plus its first
step at once). Every executed step records on its timeline entry how late it ran
(`late_seconds`: the pass's time minus the step's due time); this prints their p50, p99
and maximum against the goal (1 s) and the loop's poll interval (the reference: a step due
right after a pass waits up to one interval). Loopback and in-process only; never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from hypercare.api.app import build_state
from hypercare.config import parse_config
from hypercare.response import jobs
from hypercare.response.channels import MemoryNotifier, Notifiers
from hypercare.response.models import Escalation
from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate, TimelineEntry

GOAL = 1.0


def config_text(steps: int, wait: float) -> str:
    lines = [
        "response:",
        "  channels:",
        "    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/hook'}",
        "  policies:",
        "    - name: page",
        "      levels: [P1]",
        "      steps:",
    ]
    lines += [f"        - {{notify: [hook], wait: {int(wait * 1000)}ms}}"] * steps
    return "\n".join(lines) + "\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await migrate(engine)
        state = build_state(parse_config(config_text(args.steps, args.wait)), engine)
        rt = jobs.runtime(state)
        rt.notifiers = Notifiers({"webhook": MemoryNotifier()})
        await jobs.start(state)
        stop = asyncio.Event()
        loop = asyncio.create_task(jobs.run_response(state, stop))
        started = time.perf_counter()
        for i in range(args.issues):
            async with state.sessions() as session, session.begin():
                await triage.create_issue(
                    session=session,
                    matrix=state.matrix,
                    data=IssueCreate(title=f"bench {i}", priority="P1"),
                    actor="bench",
                )
            rt.wake.set()
            if i % 5 == 4:
                await asyncio.sleep(0.05)  # spread the openings over time, like real traffic
        deadline = time.monotonic() + args.issues * args.steps * args.wait + 60
        while time.monotonic() < deadline:
            async with state.sessions() as session:
                done = await session.scalar(
                    select(func.count()).where(Escalation.stopped_at.is_not(None))
                )
            if done == args.issues:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        stop.set()
        await loop
        async with state.sessions() as session:
            rows = await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "page"))
            late = [float(e.data["late_seconds"]) for e in rows]
        await engine.dispose()
    interval = state.config.response.dispatch.poll_interval.total_seconds()
    print(f"steps run: {len(late)} of {args.issues * args.steps} in {elapsed:.1f} s")
    if late:
        p50, p99, worst = pct(late, 0.5), pct(late, 0.99), max(late)
        print(
            f"lateness p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        )
        ratio = p99 / interval
        print(f"p99 / goal ({GOAL:.0f} s): {p99 / GOAL:.2f}; p99 / poll interval: {ratio:.2f}")
        print(f"mean {statistics.fmean(late) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--issues", type=int, default=50)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--wait", type=float, default=1.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

"""Correlation throughput: signals/s through the intake with the correlating attach step.

    .venv/bin/python bench/correlation.py [--issues 100,1000,5000] [--signals 3000] [--batch 32]
        [--rate 500] [--runs 3] [--check] [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]
        [--no-sqlite] [--save-outcomes FILE | --expect-outcomes FILE]

`--batch` is the signals per transaction: 32, like a full group commit in a storm (the intake's
writer hands up to 32 deliveries to one `ingest_many`). Prints, per store and open-issue count,
the median signals/s of `--runs` runs and the p50/p99 latency of a batch (ingest + commit: what
each of its signals waits), next to a same-run reference: the same signals through the same
intake with correlation off (`Correlator(correlation=False)`: exact dedup, no scoring), on a
store seeded the same way. The ratio (correlated / reference) is the figure to compare across
machines and loads. The correlator's open-issue cache is loaded before the clock starts (the
console reads it once, when it starts; `cache load` prints how long that took).

`--rate R` measures what the intake does in a storm instead: each signal is a delivery of its
own, arriving on schedule at R a second (open loop: arrivals do not wait for answers) at the
group-commit writer as an HTTP intake request hands it over (`feedback.views.common.Accept`:
its delivery row, one `ingest_many` for the deliveries the writer takes together — at most
32, fewer when fewer are waiting — and one commit). It prints the rate achieved and the p50/p99
latency of a signal from its arrival to its commit; the signals carry the same clock as in
`--batch` runs, so the outcomes are the same.

`--check` also attaches the same signals one per transaction and exits with status 1 if any
ended on a different issue than in batches (the batched decisions must be the same).
`--save-outcomes FILE` writes where every signal went (per store and count) as JSON;
`--expect-outcomes FILE` compares with such a file (made by an earlier version, say) and exits
with status 1 on any difference: the same correlation outcomes.

Each run starts from a fresh store (SQLite in a temporary directory, or a private schema of the
PostgreSQL database, dropped afterwards) holding `--issues` open issues made with
`triage.service.create_issue`, spread over 100 routes in 20 components, each with its own
signal. Then `--signals` signals go through `feedback.service.ingest(..., attach=Correlator)`,
`--batch` per transaction, in a realistic mix: a third tickets with free text (some naming a
route's path or words), a third gateway findings on a route, a third alerts with a component
label; one in five repeats a dedup key seen earlier in the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.api.app import build_state
from hypercare.api.state import AppState
from hypercare.config import HypercareConfig, parse_config
from hypercare.detection.attach import Correlator
from hypercare.feedback import service as feedback
from hypercare.feedback.drafts import SignalDraft
from hypercare.feedback.views.common import Accept
from hypercare.runtime import settle_gc
from hypercare.store.base import utcnow
from hypercare.store.checkpoint import checkpoints
from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate

ROUTES = 100
COMPONENTS = 20
NOUNS = ["payment", "checkout", "cart", "search", "profile", "orders", "invoice", "login"]
NOUNS += ["shipping", "stock", "coupon", "review", "wishlist", "refund", "avatar", "address"]
NOUNS += ["catalog", "session", "basket", "receipt"]
SEED_CHUNK = 250  # issues opened per transaction while seeding


def config() -> HypercareConfig:
    lines = ["gateway:", "  upstreams:", "    app:", '      targets: ["127.0.0.1:9"]', "  routes:"]
    for i in range(ROUTES):
        noun = NOUNS[i % COMPONENTS]
        lines += [
            f"    - name: {noun}-{i}",
            f"      match: {{path: /api/{noun}/v{i}}}",
            "      upstream: app",
            f"      tags: {{component: {noun}-svc, description: {noun} endpoint number {i}}}",
        ]
    return parse_config("\n".join(lines) + "\n")


def route(i: int) -> tuple[str, str, str]:
    noun = NOUNS[i % COMPONENTS]
    return f"{noun}-{i}", f"{noun}-svc", f"/api/{noun}/v{i}"


def draft(rng: random.Random, n: int, seen: list[str]) -> SignalDraft:
    if seen and rng.random() < 0.2:
        key = rng.choice(seen)
    else:
        key = f"bench-{uuid.uuid4().hex}"
        seen.append(key)
    name, component, path = route(rng.randrange(ROUTES))
    kind = n % 3
    if kind == 0:
        words = " ".join(rng.choice(NOUNS) for _ in range(6))
        mention = path if rng.random() < 0.5 else name.split("-")[0]
        return SignalDraft(
            kind="user",
            source="ticket",
            summary=f"Customer cannot finish {mention}",
            body=f"Hello, since this morning the page keeps spinning. {words}. "
            f"I tried {mention} three times and got an error each time. Please help.",
            dedup_key=key,
            raw={"n": n},
            user_ref=f"user-{rng.randrange(500)}",
        )
    if kind == 1:
        return SignalDraft(
            kind="system",
            source="gateway",
            summary=f"5xx-rate firing on {name}",
            body=f"error rate 12 % on {name} over 30 s",
            dedup_key=f"gateway:5xx-rate:{name}:{key}",
            raw={"rule": "5xx-rate", "metric": "error_rate", "value": 0.12},
            severity="critical",
            status="firing",
            route=name,
        )
    return SignalDraft(
        kind="system",
        source="alertmanager",
        summary=f"HighLatency {component}",
        body="p99 latency above 2 s for 5 minutes",
        dedup_key=f"am:{key}",
        raw={"alertname": "HighLatency"},
        severity="warning",
        status="firing",
        labels={"alertname": "HighLatency", "component": component, "instance": "host-1"},
    )


async def seed(state: AppState, issues: int) -> datetime:
    """Open `issues` issues, the last one now, each with a signal of its own; returns that
    moment. In chunks: one transaction, one insert of issues and one of signals each."""
    now = utcnow()
    for start in range(0, issues, SEED_CHUNK):
        numbers = range(start, min(issues, start + SEED_CHUNK))
        async with state.sessions() as session, session.begin():
            items = []
            for i in numbers:
                name, component, _ = route(i % ROUTES)
                items.append(
                    triage.NewIssue(
                        IssueCreate(
                            title=f"{name} failing for some users ({i})",
                            component=component,
                            route=name,
                        ),
                        "bench",
                        None,
                        now - timedelta(seconds=issues - i),
                    )
                )
            opened = await triage.create_issues(session=session, matrix=state.matrix, items=items)
            batches = []
            for i, issue in zip(numbers, opened, strict=True):
                name, component, _ = route(i % ROUTES)
                draft = SignalDraft(
                    kind="system",
                    source="seed",
                    summary=f"seed {i}",
                    dedup_key=f"seed-{i}",
                    raw={},
                    route=name,
                    component=component,
                    issue_id=issue.id,
                )
                batches.append(feedback.Batch([draft], now=now - timedelta(seconds=issues - i)))
            await feedback.ingest_many(
                session=session,
                matrix=state.matrix,
                priorities=state.config.feedback.priorities,
                batches=batches,
            )
    if state.engine.dialect.name == "postgresql":
        # the state of a database that has been running: autovacuum has vacuumed the rows and
        # kept the planner's statistics (a schema made a moment ago has none, and its plans
        # scan whole tables; and left to autovacuum, the seeded rows are vacuumed during the
        # first run, on the same two cores)
        async with state.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.exec_driver_sql(
                "VACUUM (ANALYZE) issues, timeline_entries, signals, signal_groups,"
                " signal_links, signal_exclusions, intake_deliveries"
            )
    return now


class Result(NamedTuple):
    rate: float  # signals/s
    latencies: list[float]  # seconds per batch
    issues: list[int | None]  # where each signal went
    load: float  # seconds to load the correlator's cache before the clock started
    cpu: float  # this process's CPU seconds per signal (both threads; not the database's)
    statements: float = 0.0  # SQL statements per commit while the signals went in
    commits: int = 0  # transactions committed while the signals went in


class Counts:
    """Statements and commits on an engine once `on` (the signals' part of a run)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.on = False
        self.statements = self.commits = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._statement)
        event.listen(engine.sync_engine, "commit", self._commit)

    def _statement(self, *_: object) -> None:
        self.statements += self.on

    def _commit(self, *_: object) -> None:
        self.commits += self.on

    def per_commit(self) -> float:
        return self.statements / max(1, self.commits)


async def one_run(
    url: str,
    args: argparse.Namespace,
    seed_value: int,
    schema: str | None = None,
    *,
    issues: int,
    batch: int,
    correlation: bool = True,
    rate: float = 0.0,
) -> Result:
    extra = {"connect_args": {"server_settings": {"search_path": schema}}} if schema else {}
    engine = create_engine(url, **extra)
    try:
        await migrate(engine)
        cfg = config()
        state = build_state(cfg, engine)
        seeded = await seed(state, issues)
        correlator = Correlator(cfg, correlation=correlation)
        t0 = time.perf_counter()
        async with state.sessions() as session:
            await correlator.load(session)
        load = time.perf_counter() - t0
        counts = Counts(engine)
        counts.on = True
        rng = random.Random(seed_value)
        seen: list[str] = []
        drafts = [draft(rng, n, seen) for n in range(args.signals)]
        latencies: list[float] = []
        where: list[int | None] = []
        # a clock of its own (20 signals a second from the seeding on), so that the outcome
        # does not depend on how fast the run goes (`--check` compares two runs)
        clock = seeded + timedelta(seconds=1)
        if rate:
            state.attach = correlator
            # as the console does: WAL checkpoints in the background, not in a commit
            stop = asyncio.Event()
            checkpointer = asyncio.create_task(checkpoints(engine, stop))
            try:
                paced_result = await paced(state, drafts, clock, args.batch, rate, load)
            finally:
                stop.set()
                await checkpointer
            return paced_result._replace(statements=counts.per_commit(), commits=counts.commits)
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(drafts), batch):
            t0 = time.perf_counter()
            async with state.sessions() as session, session.begin():
                done = await feedback.ingest(
                    session=session,
                    matrix=state.matrix,
                    priorities=cfg.feedback.priorities,
                    drafts=drafts[i : i + batch],
                    attach=correlator,
                    # the same time for the signals of one `--batch`, also when `--check`
                    # attaches them one per transaction
                    now=clock + timedelta(seconds=(i - i % args.batch) / 20),
                )
            latencies.append(time.perf_counter() - t0)
            where += [s.issue_id for s in done.signals]
        rate = len(drafts) / (time.perf_counter() - started)
        cpu = (time.process_time() - cpu) / len(drafts)
        return Result(rate, latencies, where, load, cpu, counts.per_commit(), counts.commits)
    finally:
        await engine.dispose()


async def paced(
    state: AppState,
    drafts: list[SignalDraft],
    clock: datetime,
    batch: int,
    rate: float,
    load: float,
) -> Result:
    """`--rate`: each signal a delivery of its own, arriving on schedule (`rate` a second,
    whatever the answers) at the intake's group-commit writer, as an HTTP intake request
    hands it over (`feedback.views.common.Accept`: a delivery row, `ingest_many` of the
    deliveries the writer groups, one commit). Its latency: from its arrival to its commit.
    The clock of the signals is the one of `--batch` runs: the same outcomes."""
    loop = asyncio.get_running_loop()
    n = len(drafts)
    latencies = [0.0] * n
    where: list[int | None] = [None] * n
    start = loop.time() + 0.05

    async def deliver(i: int) -> float:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        d = drafts[i]
        accept = Accept(
            state,
            "bench",
            d.source,
            {},
            json.dumps(d.raw).encode(),
            [d],
            None,
            now=clock + timedelta(seconds=(i - i % batch) / 20),
        )
        accepted = await state.writer.run(accept)
        done = loop.time()
        latencies[i] = done - due
        where[i] = accepted.issues[0] if accepted.issues else None
        return done

    cpu = time.process_time()
    finished = await asyncio.gather(*(deliver(i) for i in range(n)))
    cpu = (time.process_time() - cpu) / n
    return Result(n / (max(finished) - start), latencies, where, load, cpu)


async def run_store(
    name: str,
    base: str,
    args: argparse.Namespace,
    run: int,
    issues: int,
    batch: int,
    correlation: bool = True,
    rate: float = 0.0,
) -> Result:
    if name == "sqlite":
        with tempfile.TemporaryDirectory(prefix="hc-bench-corr-") as d:
            url = f"sqlite+aiosqlite:///{Path(d) / 'hc.db'}"
            return await one_run(
                url, args, run, issues=issues, batch=batch, correlation=correlation, rate=rate
            )
    schema = f"bench_corr_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    async with admin.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        return await one_run(
            base,
            args,
            run,
            schema,
            issues=issues,
            batch=batch,
            correlation=correlation,
            rate=rate,
        )
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()


def per_commit(result: Result) -> float:
    """Signals per transaction: with `--rate`, how many deliveries the writer took together."""
    return len(result.issues) / max(1, result.commits)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(
    args: argparse.Namespace,
    expected: dict[str, list[int | None]],
    outcomes: dict[str, list[int | None]],
) -> int:
    stores: list[tuple[str, str]] = [] if args.no_sqlite else [("sqlite", "")]
    if args.postgres:
        stores.append(("postgres", args.postgres))
    counts = [int(n) for n in str(args.issues).split(",") if n.strip()]
    failed = False
    for name, base in stores:
        for issues in counts:
            results, refs = [], []
            for run in range(args.runs):
                # the reference and the correlated run alternate: both see the same load
                refs.append(
                    await run_store(name, base, args, 0, issues, args.batch, False, args.rate)
                )
                results.append(
                    await run_store(name, base, args, 0, issues, args.batch, True, args.rate)
                )
                r, f = results[-1], refs[-1]
                print(
                    f"{name} {issues} issues run {run + 1}: {r.rate:8.1f} signals/s"
                    f" (reference {f.rate:.1f}), {'signal' if args.rate else 'batch'} p99"
                    f" {pct(r.latencies, 0.99) * 1000:.1f} ms",
                    file=sys.stderr,
                )
            rates = [r.rate for r in results]
            ref_rates = [r.rate for r in refs]
            lat = [x for r in results for x in r.latencies]
            ref_lat = [x for r in refs for x in r.latencies]
            rate, ref = statistics.median(rates), statistics.median(ref_rates)
            how = (
                f"offered {args.rate:.0f}/s, one per delivery through group commit"
                if args.rate
                else f"in batches of {args.batch}"
            )
            what = "signal" if args.rate else "batch"
            print(
                f"{name:8s} {issues:5d} open issues, {args.signals} signals {how}:"
                f" median {rate:.1f} signals/s"
                f" (runs: {', '.join(f'{r:.1f}' for r in rates)}); {what} latency p50"
                f" {pct(lat, 0.5) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} ms;"
                f" reference (correlation off) {ref:.1f} signals/s, p50"
                f" {pct(ref_lat, 0.5) * 1000:.1f} ms, p99 {pct(ref_lat, 0.99) * 1000:.1f} ms;"
                f" ratio {rate / ref:.2f}; CPU per signal"
                f" {statistics.median(r.cpu for r in results) * 1000:.2f} ms"
                f" (reference {statistics.median(r.cpu for r in refs) * 1000:.2f} ms); cache load"
                f" {statistics.median(r.load for r in results) * 1000:.0f} ms; statements per"
                f" commit {statistics.median(r.statements for r in results):.1f}"
                f" (reference {statistics.median(r.statements for r in refs):.1f});"
                f" signals per commit {statistics.median(per_commit(r) for r in results):.1f}"
                f" (reference {statistics.median(per_commit(r) for r in refs):.1f})"
            )
            key = f"{name}:{issues}:{args.signals}:{args.batch}"
            outcomes[key] = results[0].issues
            if key in expected and expected[key] != results[0].issues:
                differ = sum(a != b for a, b in zip(expected[key], results[0].issues, strict=True))
                print(
                    f"{name:8s} {issues:5d} open issues: {differ} signals went elsewhere than in"
                    f" {args.expect_outcomes}"
                )
                failed = True
            if args.check:
                alone = await run_store(name, base, args, 0, issues, 1)
                differ = sum(a != b for a, b in zip(alone.issues, results[0].issues, strict=True))
                print(
                    f"{name:8s} {issues:5d} open issues: {differ} of {args.signals} signals on a"
                    f" different issue one per transaction than in batches of {args.batch}"
                )
                failed = failed or differ > 0
    return 1 if failed else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--issues", default="1000", help="open issues; several: 100,1000,5000")
    ap.add_argument("--signals", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="signals/s offered one per delivery through group commit (0: --batch at a time)",
    )
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--postgres", default="")
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    ap.add_argument("--save-outcomes", default="", help="write where each signal went (JSON)")
    ap.add_argument("--expect-outcomes", default="", help="compare with a --save-outcomes file")
    args = ap.parse_args()
    settle_gc()  # as the console process does once it has started
    expected = json.loads(Path(args.expect_outcomes).read_text()) if args.expect_outcomes else {}
    outcomes: dict[str, list[int | None]] = {}
    status = asyncio.run(main_async(args, expected, outcomes))
    if args.save_outcomes:
        Path(args.save_outcomes).write_text(json.dumps(outcomes))
    sys.exit(status)


if __name__ == "__main__":
    main()

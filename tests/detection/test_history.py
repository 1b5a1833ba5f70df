"""Detection fed by the collector, baselines from the stored minute rollups, and what a
finding makes of an issue's impact start — on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.api.state import AppState
from hypercare.detection import service
from hypercare.detection.engine import Detector, Finding
from hypercare.detection.live import LiveWindows
from hypercare.detection.rules import WindowStats, default_rules, evaluate, evidence
from hypercare.feedback import service as feedback
from hypercare.feedback.drafts import SignalDraft
from hypercare.gateway.records import CallRecord, outcome
from hypercare.store.db import session_factory
from hypercare.telemetry.collector import Collector
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.wire import Batch
from hypercare.triage import service as triage
from tests.telemetry.factory import record

HOUR = 3600


def batch(records: list[CallRecord]) -> Batch:
    return Batch(uuid.uuid4().hex, time.time(), 0, 0, records, {})


def mixed(start: float, n: int, seed: int) -> list[CallRecord]:
    """Calls of every outcome, including the ambiguous ones: a 503 from a dead upstream
    (no_healthy_target) and a reset after a 200 went out."""
    rng = random.Random(seed)
    kinds = [
        (200, ""),
        (200, ""),
        (404, ""),
        (401, ""),
        (403, ""),
        (429, ""),
        (500, ""),
        (502, "bad_response"),
        (503, "no_healthy_target"),
        (504, "timeout"),
        (200, "reset"),
        (499, "client_closed"),
    ]
    out = []
    for i in range(n):
        status, error = rng.choice(kinds)
        out.append(
            record(
                start + i * 60 / n,
                route=rng.choice(("orders", "payments")),
                status=status,
                error=error,
                total_ms=rng.uniform(5, 400),
            )
        )
    return out


async def test_the_collector_feeds_detection_once_per_stored_batch(engine: AsyncEngine) -> None:
    seen: list[Sequence[CallRecord]] = []
    c = Collector(engine, TelemetryConfig(), LiveStore())

    def broken(records: Sequence[CallRecord]) -> None:
        raise RuntimeError("an observer that fails")

    c.observers += [broken, seen.append]
    b = batch(mixed(time.time(), 50, 1))
    assert await c.ingest("node-a", b) == (50, False)
    assert await c.ingest("node-a", b) == (0, True)  # the resent batch is not observed again
    assert [len(s) for s in seen] == [50]


async def test_telemetry_and_detection_count_every_outcome_alike(engine: AsyncEngine) -> None:
    c = Collector(engine, TelemetryConfig(), LiveStore())
    live = LiveWindows()
    c.observers.append(live.observe)
    minute = (int(time.time()) // HOUR - 1) * HOUR
    records = mixed(minute, 600, 2)
    for i in range(0, 600, 200):
        await c.ingest("node-a", batch(records[i : i + 200]))
    await c.flush(now=minute + HOUR)
    async with session_factory(engine)() as session:
        stored = await service.route_minutes(session=session, start=minute, end=minute + 60)
    for route in ("orders", "payments"):
        mine = [r for r in records if r.route == route]
        rolled = stored[route][minute]
        seen = live.stats(route, minute, minute + 60)
        for got in (rolled, seen):
            assert got.requests == len(mine)
            assert got.status_5xx == sum(outcome(r).server_error for r in mine)
            assert got.status_4xx == sum(outcome(r).client_error for r in mine)
            assert got.auth_failures == sum(outcome(r).auth_failure for r in mine)
            assert got.rate_limited == sum(outcome(r).rate_limited for r in mine)
            # a dead upstream's no_healthy_target is an upstream error in both
            assert got.upstream_errors == sum(outcome(r).upstream_error for r in mine)
        assert rolled.p95 is not None and seen.p95 is not None
        assert abs(rolled.p95 - seen.p95) <= 0.05 * seen.p95


async def test_baselines_survive_a_console_restart_through_the_minute_rollups(
    engine: AsyncEngine,
) -> None:
    now = float(int(time.time()) // 60 * 60)
    c = Collector(engine, TelemetryConfig(), LiveStore())
    rng = random.Random(3)
    history = [
        record(now - 1800 + i * 0.05, route="orders", total_ms=rng.uniform(20, 40))
        for i in range(1800 * 20 // 1)
        if now - 1800 + i * 0.05 < now - 120
    ]
    for i in range(0, len(history), 5000):
        await c.ingest("node-a", batch(history[i : i + 5000]))
    await c.flush(now=now)
    # a restarted console: empty live windows, history only in the store
    live = LiveWindows()
    detector = Detector(default_rules(), live)
    async with session_factory(engine)() as session:
        detector.set_history(
            await service.route_minutes(session=session, start=int(now) - 1860, end=int(now))
        )
    live.observe(
        [record(now + i * 0.05, route="orders", total_ms=rng.uniform(300, 500)) for i in range(600)]
    )
    base = detector.baseline("orders", default_rules()[2].metric, now + 30)
    assert base.value is not None and 30 <= base.value <= 45
    fired = {f.rule.name for f in detector.tick(now + 30) if f.kind == "fire"}
    fired |= {f.rule.name for f in detector.tick(now + 31) if f.kind == "fire"}
    assert "p95-vs-baseline" in fired


def _finding(rule_name: str, route: str, onset: float, at: float) -> Finding:
    rule = next(r for r in default_rules() if r.name == rule_name)
    stats = WindowStats(route, at - 30, at, requests=400, status_5xx=200, auth_failures=300)
    return Finding("fire", rule, route, evidence(rule, stats, evaluate(rule, stats)), onset, at)


async def test_impact_start_is_the_routes_first_bad_second_not_an_earlier_signal(
    state: AppState,
) -> None:
    now = datetime.now(UTC)
    async with state.sessions() as session, session.begin():
        earlier = await feedback.ingest(
            session=session,
            matrix=state.matrix,
            priorities=state.config.feedback.priorities,
            drafts=[
                SignalDraft(
                    kind="system",
                    source="alertmanager",
                    summary="payment-status: something is off",
                    dedup_key="alertmanager:payments-1",
                    raw={},
                    severity="warning",
                    status="firing",
                    occurred_at=now - timedelta(minutes=10),
                    route="payment-status",
                    component="payments",
                )
            ],
            attach=state.attach,
        )
    issue_id = earlier.issue_ids[0]
    onset = now.timestamp() - 4
    async with state.sessions() as session, session.begin():
        done = await service.emit(
            session=session,
            matrix=state.matrix,
            priorities=state.config.feedback.priorities,
            attach=state.attach,
            finding=_finding("5xx-rate", "payment-status", onset, now.timestamp()),
            component="payments",
        )
    assert done.issue_ids == [issue_id]
    async with state.sessions() as session:
        issue = await triage.get_issue(session=session, issue_id=issue_id)
        assert issue.impact_started_at is not None
        assert abs(issue.impact_started_at.timestamp() - onset) < 0.01


async def test_an_auth_failure_finding_is_a_security_signal_with_its_own_issue(
    state: AppState,
) -> None:
    now = time.time()
    finding = _finding("auth-failure-share", "payment-status", now - 12, now)
    draft = service.finding_draft(finding, "payments")
    assert draft.dedup_key == "security:auth-failure-share:payment-status"
    assert draft.labels["category"] == "security"
    assert draft.summary.startswith("Security: possible credential attack on payment-status")
    async with state.sessions() as session, session.begin():
        done = await service.emit(
            session=session,
            matrix=state.matrix,
            priorities=state.config.feedback.priorities,
            attach=state.attach,
            finding=finding,
            component="payments",
        )
    async with state.sessions() as session:
        issue = await triage.get_issue(session=session, issue_id=done.issue_ids[0])
        assert "security" in issue.labels
        assert issue.title.startswith("Security:")


def test_latency_findings_carry_a_severity_by_size() -> None:
    rule = next(r for r in default_rules() if r.name == "p95-above-bound")
    for p95, want in ((1300.0, "warning"), (2600.0, "high")):
        stats = WindowStats("orders", 0, 30, requests=400, p95=p95)
        finding = Finding(
            "fire", rule, "orders", evidence(rule, stats, evaluate(rule, stats)), 0, 30
        )
        assert service.finding_draft(finding, None).severity == want

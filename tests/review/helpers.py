"""An incident in the store: failing calls on a route, a system signal, a user report, and
an issue that went through triage to resolved."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hypercare.feedback.models import Signal
from hypercare.gateway.records import CallRecord
from hypercare.telemetry.collector import Collector
from hypercare.telemetry.config import TelemetryConfig
from hypercare.telemetry.live import LiveStore
from hypercare.telemetry.wire import Batch
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, IssueCreate
from hypercare.triage.rules import Matrix, Status
from tests.telemetry.factory import record


def ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass
class Incident:
    start: float  # the first failing call of the incident
    issue_id: int


def incident_calls(start: float) -> list[CallRecord]:
    """A stray 500 half an hour before; then 120 s of failures on `payment-status` for two
    consumers (acme 2 of 3 calls, globex 1 of 3), among good calls; good calls after."""
    calls = [record(start - 1800, route="payment-status", consumer="acme", status=500)]
    for s in range(0, 120, 2):
        who = "acme" if s % 3 else "globex"
        calls.append(record(start + s, route="payment-status", consumer=who, status=503,
                            error="timeout" if s % 4 == 0 else ""))  # fmt: skip
        calls.append(record(start + s + 1, route="payment-status", consumer="acme", status=200))
        calls.append(record(start + s + 1, route="orders", consumer="acme", status=500))
    calls += [record(start + 300 + s, route="payment-status", consumer="acme") for s in range(10)]
    return calls


async def ingest(engine: AsyncEngine, calls: list[CallRecord]) -> None:
    collector = Collector(engine, TelemetryConfig(), LiveStore())
    await collector.ingest("node-a", Batch(uuid.uuid4().hex, time.time(), 0, 0, calls, {}))


async def make_incident(
    session: AsyncSession, matrix: Matrix, *, start: float, priority: str = "P1"
) -> Incident:
    """The issue (opened by the signal 30 s after the first failure, a user report 90 s
    after it), taken to resolved 200 s after the first failure. Not committed."""
    issue = await triage.create_issue(
        session=session,
        matrix=matrix,
        data=IssueCreate(title="Payment status failing", priority=priority, component="payments"),
        actor="hypercare",
        detected_at=ts(start + 30),
        now=ts(start + 30),
    )
    for i, (kind, at, summary, route) in enumerate(
        [
            ("system", start + 30, "error rate high on payment-status", "payment-status"),
            ("user", start + 90, "I cannot pay", None),
        ]
    ):
        session.add(
            Signal(
                kind=kind,
                source="gateway" if kind == "system" else "widget",
                occurred_at=ts(at),
                received_at=ts(at),
                summary=summary,
                body="",
                route=route,
                labels={"rule": "error-rate"} if kind == "system" else {},
                request_ids=[],
                dedup_key=f"k{i}-{uuid.uuid4().hex}",
                issue_id=issue.id,
                raw={},
            )
        )
    for to, after in ((Status.triaged, 40), (Status.investigating, 60), (Status.resolved, 200)):
        await triage.transition(
            session=session,
            matrix=matrix,
            issue_id=issue.id,
            to=to,
            reason=None,
            actor="ann",
            now=ts(start + after),
        )
    await session.flush()
    return Incident(start=start, issue_id=issue.id)


async def get(session: AsyncSession, issue_id: int) -> Issue:
    return await triage.get_issue(session=session, issue_id=issue_id)

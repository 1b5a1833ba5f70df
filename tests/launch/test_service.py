"""Launch state, SLOs from the rollups, exit checks and reports on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.config import HypercareConfig
from hypercare.errors import InvalidTransition, NotFound
from hypercare.launch import report, service
from hypercare.launch.models import StateChange
from hypercare.launch.rules import LaunchState
from hypercare.telemetry.live import LiveStore
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate
from hypercare.triage.rules import Matrix, Status
from tests.launch.conftest import add_minutes, minute_row

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)


async def test_state_moves_and_refuses(session: AsyncSession, config: HypercareConfig) -> None:
    launch = await service.find(session=session, config=config, name="checkout-v2")
    assert service.state_of(launch, None, NOW) is LaunchState.active
    with pytest.raises(InvalidTransition, match="new end"):
        await service.change_state(
            session=session,
            launch=launch,
            change=StateChange(to=LaunchState.extended),
            actor="lee",
            now=NOW,
        )
    new_end = launch.planned_end + timedelta(days=7)
    rec = await service.change_state(
        session=session,
        launch=launch,
        change=StateChange(to=LaunchState.extended, end=new_end, note="two more weeks"),
        actor="lee",
        now=NOW,
    )
    assert rec.state == "extended" and service.end_of(launch, rec) == new_end
    read = service.to_read(launch, rec, NOW)
    assert read.state_history[0]["from"] == "active" and read.state_history[0]["by"] == "lee"
    with pytest.raises(NotFound, match="known launches: checkout-v2"):
        await service.find(session=session, config=config, name="nope")


async def test_slo_statuses_from_minute_rollups(
    session: AsyncSession, config: HypercareConfig
) -> None:
    launch = await service.find(session=session, config=config, name="checkout-v2")
    rows = [
        minute_row("payment-status", NOW - timedelta(minutes=m), 100, 0, 100) for m in range(1, 31)
    ]
    # ten bad minutes: 20 % errors, slow
    rows += [
        minute_row("payment-status", NOW - timedelta(minutes=m), 100, 20, 900)
        for m in range(31, 41)
    ]
    rows += [minute_row("catalog", NOW - timedelta(minutes=5), 100, 100, 900)]  # not in scope
    await add_minutes(session, rows)
    statuses = await service.slo_statuses(
        session=session,
        live=LiveStore(),
        config=config,
        launch=launch,
        end=launch.planned_end,
        now=NOW,
    )
    avail, fast = statuses["avail"], statuses["fast"]
    assert (avail.total, avail.bad) == (4000, 200)
    assert avail.sli == 95.0 and not avail.met and avail.budget_remaining == -4.0
    assert (fast.total, fast.bad) == (4000, 1000) and fast.sli == 75.0
    burns = await service.burn_points(
        session=session,
        live=LiveStore(),
        slos=launch.slos,
        route_components=service.route_components(config),
        now=NOW.timestamp(),
    )
    assert sum(p.bad for p in burns["avail"]) == 200


async def test_exit_check_with_evidence_and_history(
    session: AsyncSession, config: HypercareConfig
) -> None:
    matrix = Matrix(config.triage)
    p1 = await triage.create_issue(
        session=session,
        matrix=matrix,
        actor="t",
        data=IssueCreate(title="payments down", priority="P1", route="payment-status"),
        now=NOW - timedelta(hours=3),
    )
    # another component's issue is not the launch's
    await triage.create_issue(
        session=session,
        matrix=matrix,
        actor="t",
        data=IssueCreate(title="catalog slow", priority="P1", component="catalog"),
        now=NOW - timedelta(hours=3),
    )
    await add_minutes(
        session,
        [
            minute_row("payment-status", NOW - timedelta(minutes=m), 100, 0, 50)
            for m in range(1, 30)
        ],
    )
    card = await service.exit_check(
        session=session, live=LiveStore(), config=config, name="checkout-v2", now=NOW
    )
    by = {r.kind: r for r in card.results}
    assert not card.passed and not by["no_open"].passed
    assert by["no_open"].links == (f"/issues/{p1.id}",)
    assert by["slo_met"].passed and by["metric"].passed
    assert by["metric"].evidence["value"] == 0.0
    # fixing the issue flips the scorecard; the history keeps both outcomes
    for step in (Status.triaged, Status.resolved):
        await triage.transition(
            session=session,
            matrix=matrix,
            issue_id=p1.id,
            to=step,
            reason="fixed",
            actor="t",
            now=NOW,
        )
    later = NOW + timedelta(minutes=1)
    card = await service.exit_check(
        session=session, live=LiveStore(), config=config, name="checkout-v2", now=later
    )
    assert card.passed
    # an unchanged outcome within the hour adds no row
    await service.exit_check(
        session=session,
        live=LiveStore(),
        config=config,
        name="checkout-v2",
        now=later + timedelta(minutes=5),
    )
    history = await service.evaluations(session=session, name="checkout-v2")
    assert [e.passed for e in history] == [True, False]


async def test_report_numbers(session: AsyncSession, config: HypercareConfig) -> None:
    matrix = Matrix(config.triage)
    issue = await triage.create_issue(
        session=session,
        matrix=matrix,
        actor="t",
        data=IssueCreate(
            title="payments down",
            priority="P1",
            route="payment-status",
            impact_started_at=NOW - timedelta(hours=2, minutes=10),
        ),
        detected_at=NOW - timedelta(hours=2),
        now=NOW - timedelta(hours=2),
    )
    await triage.transition(
        session=session,
        matrix=matrix,
        issue_id=issue.id,
        to=Status.triaged,
        reason="",
        actor="t",
        now=NOW - timedelta(hours=1),
    )
    await add_minutes(
        session,
        [
            minute_row("payment-status", NOW - timedelta(minutes=m), 100, 10, 50)
            for m in range(1, 30)
        ],
    )
    data = await service.load_report(
        session=session, live=LiveStore(), config=config, name="checkout-v2", kind="final", now=NOW
    )
    assert [i.id for i in data.issues] == [issue.id]
    assert data.failing[0].route == "payment-status" and data.failing[0].errors == 290
    md = report.markdown(data)
    assert "# Post-hypercare report: checkout-v2" in md
    assert "| P1 | 1 | 10m / 10m |" in md
    html = report.html(data)
    assert "<svg" in html and "<script" not in html and "http" not in html.split("<body>")[1]
    daily = await service.load_report(
        session=session, live=LiveStore(), config=config, name="checkout-v2", kind="daily", now=NOW
    )
    assert daily.start == NOW - timedelta(days=1)

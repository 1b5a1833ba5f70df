"""Burn-rate alerts reach the issue tracker through the normal intake."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from hypercare.api.state import AppState
from hypercare.feedback.models import Signal
from hypercare.launch import jobs, service
from hypercare.launch.models import LaunchEvaluation
from hypercare.store.base import utcnow
from hypercare.triage.models import Issue
from tests.launch.conftest import minute_row


async def test_a_fast_burn_pages_as_p1_and_recovers(state: AppState) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    async with state.sessions() as s, s.begin():
        s.add_all(
            [
                minute_row("payment-status", now - timedelta(minutes=m), 100, 40, 50)
                for m in range(1, 11)
            ]
        )
    rt = jobs.LaunchRuntime()
    assert await jobs.burn_cycle(state, rt, now) == 1
    assert await jobs.burn_cycle(state, rt, now) == 0  # still firing: nothing new to say
    async with state.sessions() as s:
        (signal,) = (await s.scalars(select(Signal).where(Signal.source == "slo"))).all()
        issue = await s.get(Issue, signal.issue_id)
    assert signal.status == "firing" and signal.severity == "critical"
    assert signal.raw["long_burn_rate"] == 40.0 and signal.raw["action"] == "page"
    assert signal.route == "payment-status" and signal.component == "payments"
    assert issue is not None and issue.priority == "P1" and "SLO avail" in issue.title

    # an hour of busy clean traffic later every window burns under its factor (400 bad of
    # 61,000 calls is 0.66× over the 3-day window): a resolve goes to the same group
    later = now + timedelta(minutes=61)
    async with state.sessions() as s, s.begin():
        s.add_all(
            [
                minute_row("payment-status", later - timedelta(minutes=m), 1000, 0, 50)
                for m in range(1, 61)
            ]
        )
    assert await jobs.burn_cycle(state, rt, later) == 1
    async with state.sessions() as s:
        last = (
            await s.scalars(select(Signal).where(Signal.source == "slo").order_by(Signal.id.desc()))
        ).first()
    assert last is not None and last.status == "resolved" and last.issue_id == issue.id


async def test_evaluate_all_keeps_history(state: AppState) -> None:
    await jobs.evaluate_all(state, utcnow())
    async with state.sessions() as s:
        rows = (await s.scalars(select(LaunchEvaluation))).all()
    assert [r.launch for r in rows] == ["checkout-v2"]


async def test_launches_made_through_the_api_are_watched_too(state: AppState) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    async with state.sessions() as s, s.begin():
        await service.create(
            session=s,
            config=state.config,
            spec={
                "name": "catalog-v2",
                "start": (now - timedelta(days=1)).isoformat(),
                "slos": [{"name": "up", "route": "catalog", "target": 99}],
                "exit_criteria": [{"no_open": ["P1"]}],
            },
            actor="lee",
            now=now,
        )
        s.add_all(
            [minute_row("catalog", now - timedelta(minutes=m), 100, 50, 50) for m in range(1, 11)]
        )
    rt = jobs.LaunchRuntime()
    assert await jobs.burn_cycle(state, rt, now) == 1
    assert ("catalog-v2", "up") in rt.firing
    async with state.sessions() as s:
        (signal,) = (await s.scalars(select(Signal).where(Signal.source == "slo"))).all()
    assert signal.raw["launch"] == "catalog-v2" and signal.route == "catalog"
    # evaluated with the file's launch; a pass that skips both evaluates nothing
    assert await jobs.evaluate_all(state, now) == {"checkout-v2", "catalog-v2"}
    assert await jobs.evaluate_all(state, now, skip={"checkout-v2", "catalog-v2"}) == set()
    async with state.sessions() as s:
        rows = (await s.scalars(select(LaunchEvaluation))).all()
    assert sorted(r.launch for r in rows) == ["catalog-v2", "checkout-v2"]

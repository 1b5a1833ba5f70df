"""The status loop's side effects: reminders to responders on the issue's timeline, and
the maintenance hook detection asks before opening anything."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.detection import jobs as detection_jobs
from hypercare.status import jobs
from hypercare.store.base import utcnow
from hypercare.triage import service as triage
from tests.conftest import auth

CONFIG = """
status:
  components:
    - {name: Payments, routes: [payment-status]}
  reminders: {P1: 30m}
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def test_reminder_when_no_public_update(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    r = await client.post(
        "/api/v1/issues",
        json={"title": "Pay", "priority": "P1"},
        headers=auth(tokens[Role.support]),
    )
    issue_id = r.json()["id"]
    r = await client.post(
        "/api/v1/status/incidents",
        json={"issue_id": issue_id, "name": "Pay", "body": "Looking", "components": ["Payments"]},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201
    rt = jobs.runtime(state)
    await jobs.remind(state, rt, time.time() + 60)
    await jobs.remind(state, rt, time.time() + 31 * 60)
    await jobs.remind(state, rt, time.time() + 32 * 60)  # once per silence, not every pass
    async with state.sessions() as s:
        entries = await triage.timeline(session=s, issue_id=issue_id)
    reminders = [e for e in entries if e.kind == "status_reminder"]
    assert len(reminders) == 1 and "No public update" in reminders[0].text


async def test_detection_skips_routes_under_maintenance(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    expected = detection_jobs.runtime(state).expected
    assert expected is not None
    now = utcnow()
    r = await client.post(
        "/api/v1/status/maintenances",
        json={
            "name": "Upgrade",
            "components": ["Payments"],
            "scheduled_for": (now - timedelta(minutes=1)).isoformat(),
            "scheduled_until": (now + timedelta(minutes=30)).isoformat(),
        },
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201
    assert not expected("payment-status")  # not read from the store yet
    rt = jobs.runtime(state)
    rt.wake.set()
    await jobs.turn(state, rt, time.time())
    assert expected("payment-status") and not expected("catalog-search")


async def test_the_loops_rebuild_serves_what_build_serves(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    r = await client.post(
        "/api/v1/status/incidents",
        json={"name": "Pay", "body": "Looking", "components": ["Payments"], "publish": True},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201, r.text
    rt = jobs.runtime(state)
    await jobs.reload(state, rt, time.time())
    jobs.build(state, rt)
    built, builds = rt.served, rt.builds
    await jobs.rebuild(state, rt)
    assert rt.builds == builds + 1 and rt.served is not built
    assert {p: (s.body, s.etag, s.content_type) for p, s in rt.served.items()} == {
        p: (s.body, s.etag, s.content_type) for p, s in built.items()
    }
    assert b"Pay" in rt.served["/status"].body

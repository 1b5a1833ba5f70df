"""The status page in the console: components, overrides, a public incident opened from an
issue's page and updated, maintenance scheduled through the forms."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.status import jobs
from hypercare.store.base import utcnow
from hypercare.triage import service as triage
from tests.web.conftest import Browser

Make = Callable[[Role], Awaitable[Browser]]

CONFIG = """
status:
  components:
    - {name: Payments, routes: [payment-status]}
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def _turn(state: AppState) -> None:
    rt = jobs.runtime(state)
    rt.wake.set()
    await jobs.turn(state, rt, time.time())


async def test_open_and_update_a_public_incident_from_the_issue(
    browser_for: Make, state: AppState
) -> None:
    b = await browser_for(Role.responder)
    r = await b.post("/issues/new", {"title": "Card payments fail", "priority": "P1"})
    assert r.status_code in (200, 303), r.text
    async with state.sessions() as s:
        (issue,), _ = await triage.list_issues(
            session=s, filters=triage.IssueFilter(), limit=5, offset=0
        )
    page = await b.http.get(f"/issues/{issue.id}")
    assert "Open public incident" in page.text
    r = await b.http.post(
        f"/issues/{issue.id}/status-incident",
        data={
            "csrf": b.csrf,
            "name": "Payments unavailable",
            "components": ["Payments"],
            "scenario": "outage",
            "publish": "on",
        },
    )
    assert r.status_code == 303, r.text
    r = await b.post(
        "/status-page/incidents/1/updates",
        {
            "status": "monitoring",
            "body": "A fix is deployed.",
            "component": "Payments",
            "component_status": "degraded_performance",
            "back": str(issue.id),
        },
    )
    assert r.status_code == 303 and r.headers["location"].endswith("#public-incident")
    await _turn(state)
    public = (await b.http.get("/api/v2/summary.json")).json()
    assert public["incidents"][0]["status"] == "monitoring"
    assert public["components"][0]["status"] == "degraded_performance"
    page = await b.http.get(f"/issues/{issue.id}")
    assert "A fix is deployed." in page.text
    console = await b.http.get("/status-page")
    assert console.status_code == 200 and "Payments unavailable" in console.text


async def test_override_and_maintenance_forms(browser_for: Make, state: AppState) -> None:
    b = await browser_for(Role.responder)
    r = await b.post(
        "/status-page/overrides",
        {"component": "Payments", "status": "partial_outage", "minutes": "10"},
    )
    assert r.status_code == 303
    await _turn(state)
    page = await b.http.get("/status-page")
    assert 'data-status="partial_outage"' in page.text and "Lift" in page.text
    start = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    end = (utcnow() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    r = await b.http.post(
        "/status-page/maintenances",
        data={
            "csrf": b.csrf,
            "name": "Upgrade",
            "components": ["Payments"],
            "start": start,
            "end": end,
        },
    )
    assert r.status_code == 303, r.text
    bad = await b.post("/status-page/overrides", {"component": "Nope", "status": "x"})
    assert bad.status_code == 422


async def test_viewers_cannot_change(browser_for: Make) -> None:
    b = await browser_for(Role.viewer)
    page = await b.http.get("/status-page")
    assert page.status_code == 200 and "Override</button>" not in page.text
    r = await b.post("/status-page/overrides", {"component": "Payments", "status": "major_outage"})
    assert r.status_code == 403

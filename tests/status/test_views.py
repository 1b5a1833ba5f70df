"""The status page through HTTP: public documents (Statuspage v2 shape, ETag, CSP, rate
limit, nothing unpublished), and the API (incidents, updates, overrides, maintenance,
templates), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.api.app import build_state, create_app
from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.gateway.records import CallRecord
from hypercare.status import jobs
from hypercare.store.base import utcnow
from hypercare.triage import service as triage
from tests.conftest import auth

# a real Statuspage summary.json (copied from the shared integration fixtures)
SAMPLE = Path(__file__).parent / "statuspage_v2_summary.json"

CONFIG = """
status:
  page: {name: Shop status}
  components:
    - name: Payments
      routes: [payment-status]
    - name: Catalog
      description: Search and items
      group: Shop
      routes: [catalog-search]
  hysteresis: {raise_after: 0s, clear_after: 0s}
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def turn(state: AppState, now: float | None = None) -> None:
    rt = jobs.runtime(state)
    rt.wake.set()
    await jobs.turn(state, rt, time.time() if now is None else now)


def call(t: float, route: str, status: int) -> CallRecord:
    return CallRecord(
        t, route, "c", "GET", "/p", "/p", status, 0, 0, "", 1.0, 1.0, 20.0, "", "1", "r", "t"
    )


def shape(value: Any) -> Any:
    """Keys (recursively) of a JSON document, for comparing with the real sample."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def _keys_cover(sample: Any, ours: Any, where: str = "") -> None:
    if isinstance(sample, dict):
        assert isinstance(ours, dict), where
        missing = set(sample) - set(ours)
        assert not missing, f"{where}: missing {missing}"
        for k in sample:
            _keys_cover(sample[k], ours[k], f"{where}.{k}")
    elif isinstance(sample, list) and sample and ours:
        _keys_cover(sample[0], ours[0], f"{where}[0]")


async def test_minimal_config_public_json_without_token(
    client: httpx.AsyncClient, state: AppState
) -> None:
    r = await client.get("/api/v2/summary.json")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert set(body["page"]) == {"id", "name", "url", "time_zone", "updated_at"}
    names = {c["name"]: c for c in body["components"]}
    assert names["Payments"]["status"] == "operational"
    assert names["Shop"]["group"] is True and names["Catalog"]["group_id"] == names["Shop"]["id"]
    for path in (
        "status.json",
        "components.json",
        "incidents.json",
        "incidents/unresolved.json",
        "scheduled-maintenances.json",
        "scheduled-maintenances/upcoming.json",
        "scheduled-maintenances/active.json",
    ):
        r = await client.get(f"/api/v2/{path}")
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("application/json")
        assert "page" in r.json()


async def test_etag_and_methods(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v2/status.json")
    etag = r.headers["etag"]
    again = await client.get("/api/v2/status.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    post = await client.post("/api/v2/status.json")
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    head = await client.head("/status")
    assert head.status_code == 200 and head.content == b""


async def test_page_html_strict_csp_and_feeds(client: httpx.AsyncClient) -> None:
    r = await client.get("/status")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "script-src" not in csp
    assert "<script" not in r.text and "style=" not in r.text
    assert "Shop status" in r.text and "Payments" in r.text and "Operational" in r.text
    assert "share of that day" in r.text  # the uptime definition is shown
    assert r.text.count('<li class="b-') == 2 * 90
    css = await client.get("/status/style.css")
    assert css.headers["content-type"].startswith("text/css")
    rss = await client.get("/status/feed.rss")
    assert rss.headers["content-type"].startswith("application/rss+xml") and "<rss" in rss.text
    atom = await client.get("/status/feed.atom")
    assert "<feed" in atom.text
    assert (await client.get("/status/history")).status_code == 200


async def test_incident_lifecycle_public_and_on_the_issue_timeline(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    r = await client.post(
        "/api/v1/issues",
        json={"title": "INTERNAL secret db password rotation broke pay", "priority": "P1"},
        headers=auth(tokens[Role.support]),
    )
    issue_id = r.json()["id"]
    r = await client.post(
        "/api/v1/status/incidents",
        json={
            "issue_id": issue_id,
            "name": "Payments failing",
            "components": ["Payments"],
            "scenario": "outage",
            "workaround": "pay by invoice",
            "next_update_in_minutes": 30,
            "impact": "critical",
        },
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201, r.text
    incident = r.json()
    assert "Payments is unavailable" in incident["updates"][0]["body"]
    assert "pay by invoice" in incident["updates"][0]["body"]
    r = await client.post(
        f"/api/v1/status/incidents/{incident['id']}/updates",
        json={
            "status": "identified",
            "body": "We found the cause.",
            "affected": [{"component": "Payments", "status": "major_outage"}],
        },
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201, r.text
    await turn(state)
    summary = (await client.get("/api/v2/summary.json")).json()
    assert summary["status"]["indicator"] == "critical"
    (pub,) = summary["incidents"]
    assert pub["status"] == "identified" and pub["impact"] == "critical"
    newest = pub["incident_updates"][0]
    assert newest["body"] == "We found the cause."
    assert newest["affected_components"][0]["new_status"] == "major_outage"
    assert newest["affected_components"][0]["old_status"] == "operational"
    pay = next(c for c in summary["components"] if c["name"] == "Payments")
    assert pay["status"] == "major_outage"
    page = (await client.get("/status")).text
    assert "Payments failing" in page and "We found the cause." in page
    # nothing of the internal issue is public
    for path in ("/status", "/status/history", "/status/feed.rss", "/api/v2/incidents.json"):
        assert "INTERNAL" not in (await client.get(path)).text
    # the timeline of the issue records both
    async with state.sessions() as s:
        entries = await triage.timeline(session=s, issue_id=issue_id)
    texts = [e.text for e in entries if e.kind == "status_page"]
    assert len(texts) == 2 and "We found the cause." in texts[1]
    # resolving brings the component back
    r = await client.post(
        f"/api/v1/status/incidents/{incident['id']}/updates",
        json={
            "status": "resolved",
            "scenario": "resolved",
            "affected": [{"component": "Payments", "status": "operational"}],
        },
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201, r.text
    await turn(state)
    summary = (await client.get("/api/v2/summary.json")).json()
    assert summary["incidents"] == [] and summary["status"]["indicator"] == "none"
    history = (await client.get("/api/v2/incidents.json")).json()["incidents"]
    assert history[0]["status"] == "resolved" and history[0]["resolved_at"]


async def test_drafts_stay_private(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    r = await client.post(
        "/api/v1/status/incidents",
        json={"name": "Draft only", "body": "not yet", "publish": False},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201
    await turn(state)
    assert "Draft only" not in (await client.get("/api/v2/incidents.json")).text
    listed = await client.get("/api/v1/status/incidents", headers=auth(tokens[Role.viewer]))
    assert listed.json()[0]["published"] is False


async def test_summary_shape_matches_statuspage(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    now = utcnow()
    await client.post(
        "/api/v1/status/incidents",
        json={"name": "Slow", "components": ["Payments"], "body": "slow"},
        headers=auth(tokens[Role.responder]),
    )
    r = await client.post(
        "/api/v1/status/maintenances",
        json={
            "name": "DB upgrade",
            "components": ["Catalog"],
            "scheduled_for": (now + timedelta(hours=1)).isoformat(),
            "scheduled_until": (now + timedelta(hours=2)).isoformat(),
        },
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201, r.text
    await turn(state)
    ours = (await client.get("/api/v2/summary.json")).json()
    sample = json.loads(SAMPLE.read_text())
    _keys_cover(sample, ours)
    assert ours["scheduled_maintenances"][0]["status"] == "scheduled"
    upcoming = (await client.get("/api/v2/scheduled-maintenances/upcoming.json")).json()
    assert upcoming["scheduled_maintenances"][0]["name"] == "DB upgrade"


async def test_maintenance_window_shows_under_maintenance(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    now = utcnow()
    r = await client.post(
        "/api/v1/status/maintenances",
        json={
            "name": "Now",
            "components": ["Payments"],
            "scheduled_for": (now - timedelta(minutes=1)).isoformat(),
            "scheduled_until": (now + timedelta(hours=1)).isoformat(),
        },
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201
    await turn(state)
    comps = (await client.get("/api/v2/components.json")).json()["components"]
    assert next(c for c in comps if c["name"] == "Payments")["status"] == "under_maintenance"
    active = (await client.get("/api/v2/scheduled-maintenances/active.json")).json()
    assert active["scheduled_maintenances"][0]["status"] == "in_progress"
    assert jobs.runtime(state).under_maintenance("payment-status")
    assert not jobs.runtime(state).under_maintenance("catalog-search")


async def test_traffic_drives_state_and_timeline(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    r = await client.post(
        "/api/v1/issues",
        json={"title": "Pay errors", "priority": "P2", "route": "payment-status"},
        headers=auth(tokens[Role.support]),
    )
    issue_id = r.json()["id"]
    now = time.time()
    live = jobs.live_windows(state)
    live.observe([call(now - 1 - i / 100, "payment-status", 503) for i in range(50)])
    await turn(state, now)
    comps = (await client.get("/api/v2/components.json")).json()["components"]
    assert next(c for c in comps if c["name"] == "Payments")["status"] == "major_outage"
    async with state.sessions() as s:
        entries = await triage.timeline(session=s, issue_id=issue_id)
    (change,) = [e for e in entries if e.kind == "status_component"]
    assert change.data["to"] == "major_outage"
    # a draft incident was suggested, not published
    listed = await client.get("/api/v1/status/incidents", headers=auth(tokens[Role.viewer]))
    (draft,) = listed.json()
    assert draft["published"] is False and draft["suggested_by"] == "Payments"
    assert (await client.get("/api/v2/incidents.json")).json()["incidents"] == []
    # traffic recovers
    later = now + 20
    live.observe([call(later - 1 - i / 100, "payment-status", 200) for i in range(50)])
    await turn(state, later)
    comps = (await client.get("/api/v2/components.json")).json()["components"]
    assert next(c for c in comps if c["name"] == "Payments")["status"] == "operational"
    # the draft nobody published is closed with the outage
    listed = await client.get("/api/v1/status/incidents", headers=auth(tokens[Role.viewer]))
    assert listed.json()[0]["status"] == "resolved"


async def test_override_with_expiry(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    r = await client.post(
        "/api/v1/status/overrides",
        json={"component": "Catalog", "status": "degraded_performance", "expires_in_minutes": 5},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201, r.text
    await turn(state)
    comps = await client.get("/api/v1/status/components", headers=auth(tokens[Role.viewer]))
    cat = next(c for c in comps.json() if c["name"] == "Catalog")
    assert cat["status"] == "degraded_performance" and cat["source"] == "override"
    await turn(state, time.time() + 301)
    summary = (await client.get("/api/v2/summary.json")).json()
    assert next(c for c in summary["components"] if c["name"] == "Catalog")["status"] == (
        "operational"
    )
    bad = await client.post(
        "/api/v1/status/overrides",
        json={"component": "Nope", "status": "major_outage"},
        headers=auth(tokens[Role.responder]),
    )
    assert bad.status_code == 422 and "Nope" in bad.text


async def test_templates_edit_preview_and_errors(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    h = auth(tokens[Role.responder])
    bad = await client.put(
        "/api/v1/status/templates/outage", json={"body": "ok\n{{ compnent }}"}, headers=h
    )
    assert bad.status_code == 422
    assert "line 2" in bad.json()["error"]["message"]
    syntax = await client.put(
        "/api/v1/status/templates/outage", json={"body": "{% if x %}"}, headers=h
    )
    assert syntax.status_code == 422 and "line 1" in syntax.json()["error"]["message"]
    ok = await client.put(
        "/api/v1/status/templates/outage",
        json={"body": "{{ component }} is down ({{ impact }})"},
        headers=h,
    )
    assert ok.status_code == 200
    preview = await client.post(
        "/api/v1/status/templates/preview",
        json={"scenario": "outage", "variables": {"component": "Checkout"}},
        headers=h,
    )
    assert preview.json()["text"] == "Checkout is down (major)"
    listed = await client.get("/api/v1/status/templates", headers=h)
    sources = {t["scenario"]: t["source"] for t in listed.json()}
    assert sources["outage"] == "api" and sources["resolved"] == "default"
    unknown = await client.put("/api/v1/status/templates/nope", json={"body": "x"}, headers=h)
    assert unknown.status_code == 422


async def test_api_needs_a_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/status/incidents", json={"name": "x", "body": "y"})
    assert r.status_code == 401


async def test_public_rate_limit(engine: AsyncEngine) -> None:
    limited = build_state(parse_config(CONFIG + "  rate_limit: 3\n", "t.yaml"), engine)
    app = create_app(limited, background=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
        codes = [(await c.get("/api/v2/status.json")).status_code for _ in range(5)]
        r = await c.get("/status")
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


async def test_published_text_is_escaped(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    r = await client.post(
        "/api/v1/status/incidents",
        json={"name": "<b>x</b>", "body": "<script>alert(1)</script>"},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 201
    await turn(state)
    for path in ("/status", "/status/history", "/status/feed.rss", "/status/feed.atom"):
        text = (await client.get(path)).text
        assert "<script>" not in text and "&lt;script&gt;" in text, path

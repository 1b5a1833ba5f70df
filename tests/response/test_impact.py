"""Impact-confirmed paging: a system alert pages on-call only when the gateway's live
telemetry shows user impact on its route; otherwise the team channel hears why."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.detection import jobs as detection_jobs
from hypercare.detection.rules import WindowStats
from hypercare.errors import ConfigError
from hypercare.gateway.records import CallRecord
from hypercare.response import service
from hypercare.response.channels import MemoryNotifier
from hypercare.response.rules import impact_verdict, system_alert
from tests.conftest import auth
from tests.response.support import turn

GATE = {
    "window": timedelta(minutes=5),
    "min_requests": 20,
    "error_rate": 0.02,
    "p95_ms": 2000.0,
}


def test_verdicts_name_the_numbers() -> None:
    ok = WindowStats("pay", 0, 300, requests=1000, status_5xx=3, p95=180.0)
    v = impact_verdict([ok], **GATE)  # type: ignore[arg-type]
    assert v.impact is False
    assert v.text == (
        "no user impact: pay: 1000 requests in the last 5 min, 3 failed (0.3%, threshold "
        "2.0%), p95 180 ms (threshold 2000 ms)"
    )
    errors = WindowStats("pay", 0, 300, requests=100, status_5xx=2, gateway_errors=1)
    assert impact_verdict([errors], **GATE).impact is True  # type: ignore[arg-type]
    slow = WindowStats("pay", 0, 300, requests=100, p95=2500.0)
    assert impact_verdict([slow], **GATE).impact is True  # type: ignore[arg-type]
    quiet = impact_verdict([WindowStats("pay", 0, 300, requests=3)], **GATE)  # type: ignore[arg-type]
    assert quiet.impact is None and "fewer than 20" in quiet.text
    # several routes of a component: summed, the worst p95
    both = impact_verdict(
        [ok, WindowStats("refund", 0, 300, requests=10, p95=2100.0)],
        **GATE,  # type: ignore[arg-type]
    )
    assert both.impact is True and "pay, refund: 1010 requests" in both.text
    assert system_alert(["source:grafana", "x"], ["grafana"])
    assert not system_alert(["source:ticket"], ["grafana"])


CONFIG = """
gateway:
  upstreams:
    app: {targets: ['127.0.0.1:9']}
  routes:
    - {name: pay, match: {path: /api/pay}, upstream: app, tags: {component: payments}}
response:
  channels:
    - {name: team-chat, type: webhook, url: 'http://127.0.0.1:9/team'}
  people:
    - {name: ann, contacts: [{type: webhook, url: 'http://127.0.0.1:9/ann'}]}
  schedules:
    - name: primary
      time_zone: UTC
      layers: [{rotation: weekly, start: 2026-01-05, members: [ann]}]
  policies:
    - {name: page, levels: [P1], steps: [{notify: [primary], wait: 5m}]}
  impact_gate: {notify: [team-chat]}
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


def traffic(state: AppState, count: int, failing: int) -> None:
    now = time.time()
    records = [
        CallRecord(
            time=now - 1,
            route="pay",
            consumer="",
            method="POST",
            path_template="/api/pay",
            path="/api/pay",
            status=500 if i < failing else 200,
            request_bytes=10,
            response_bytes=10,
            target="127.0.0.1:9",
            gateway_ms=0.1,
            upstream_ms=20.0,
            total_ms=21.0,
            error="",
            client_ip="127.0.0.1",
            request_id=f"r{i}",
            trace_id="0" * 32,
        )
        for i in range(count)
    ]
    detection_jobs.runtime(state).live.observe(records)


async def _alert(client: httpx.AsyncClient, tokens: dict[Role, str]) -> int:
    r = await client.post(
        "/api/v1/issues",
        json={
            "title": "PaymentsHighLatency",
            "priority": "P1",
            "route": "/api/pay",
            "labels": ["source:alertmanager"],
        },
        headers=auth(tokens[Role.support]),
    )
    assert r.status_code == 201, r.text
    issue_id: int = r.json()["id"]
    return issue_id


async def test_an_alert_without_user_impact_tells_the_team_and_pages_nobody(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    traffic(state, 200, failing=1)
    issue_id = await _alert(client, tokens)
    await turn(state)
    assert [o.channel.name for o in memory.sent] == ["team-chat"]
    text = memory.sent[0].message["text"]
    assert text.startswith("no user impact: pay: 200 requests in the last 5 min, 1 failed (0.5%")
    assert "on-call not paged" in text
    async with state.sessions() as session:
        assert await service.list_escalations(session=session, issue_id=issue_id) == []


async def test_an_alert_with_user_impact_pages_on_call(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    traffic(state, 200, failing=50)
    issue_id = await _alert(client, tokens)
    await turn(state)
    assert [o.channel.name for o in memory.sent] == ["ann/0"]
    r = await client.get(f"/api/v1/issues/{issue_id}/timeline", headers=auth(tokens[Role.viewer]))
    checks = [e["text"] for e in r.json() if e["kind"] == "impact_check"]
    assert len(checks) == 1 and checks[0].startswith("user impact confirmed: pay: 200 requests")


async def test_a_human_report_is_not_gated(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    traffic(state, 200, failing=0)
    r = await client.post(
        "/api/v1/issues",
        json={"title": "Cannot pay", "priority": "P1", "route": "/api/pay"},
        headers=auth(tokens[Role.support]),
    )
    assert r.status_code == 201
    await turn(state)
    assert [o.channel.name for o in memory.sent] == ["ann/0"]


def test_the_gate_must_name_a_channel() -> None:
    with pytest.raises(ConfigError, match=r"test.yaml:\d+: response.impact_gate.notify\[0\]"):
        parse_config(CONFIG.replace("notify: [team-chat]", "notify: [ann]"), "test.yaml")


async def test_impact_appearing_later_pages_on_call_once_with_the_numbers(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    traffic(state, 200, failing=1)
    issue_id = await _alert(client, tokens)
    await turn(state)
    assert [o.channel.name for o in memory.sent] == ["team-chat"]
    await turn(state)  # still no impact: nobody paged
    assert len(memory.sent) == 1
    traffic(state, 200, failing=120)  # now users are hurt
    await turn(state)
    pages = [o for o in memory.sent if o.channel.name == "ann/0"]
    assert len(pages) == 1
    evidence = pages[0].message["evidence"]
    assert evidence["Impact"].startswith("user impact confirmed: pay: 400 requests")
    assert "121 failed" in evidence["Impact"]
    await turn(state)
    await turn(state)
    assert len([o for o in memory.sent if o.channel.name == "ann/0"]) == 1  # once
    r = await client.get(f"/api/v1/issues/{issue_id}/timeline", headers=auth(tokens[Role.viewer]))
    checks = [e["text"] for e in r.json() if e["kind"] == "impact_check"]
    assert len(checks) == 2 and "appeared after the alert opened" in checks[1]
    async with state.sessions() as session:
        (run,) = await service.list_escalations(session=session, issue_id=issue_id)
    assert run.policy == "page"

"""Escalation policies on both stores: started by the matrix, steps on the timeline with
deliveries to the on-call person's contacts, advanced by the SLA, stopped by
acknowledgement. Later steps are run by calling the pass with a later `now` (no sleeping)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.response import jobs, service
from hypercare.response.channels import MemoryNotifier, slack_body
from hypercare.response.oncall import on_call
from hypercare.response.roster import schedule_of
from hypercare.store.base import utcnow
from hypercare.triage import service as triage_service
from tests.conftest import auth
from tests.response.support import turn

CONFIG = """
response:
  channels:
    - {name: ops-hook, type: webhook, url: 'http://127.0.0.1:9/hook'}
  people:
    - name: ann
      contacts: [{type: webhook, url: 'http://127.0.0.1:9/ann'}]
      time_zone: Asia/Tokyo
      quiet_hours: {from: '00:00', to: '00:00'}   # the whole day: only P1 gets through
    - name: bob
      contacts: [{type: webhook, url: 'http://127.0.0.1:9/bob'}]
    - {name: cat}
  schedules:
    - name: primary
      time_zone: UTC
      layers:
        - {rotation: daily, handoff: '00:00', start: 2026-01-01, members: [ann, bob]}
  policies:
    - name: p1-page
      levels: [24/7 on-call engineering]
      steps:
        - {notify: [primary], wait: 5m}
        - {notify: [bob, ops-hook, cat], wait: 5m}
  rules:
    - match: {priority: [P2]}
      notify: [ann, bob]
  dispatch: {backoff: 0s, max_attempts: 1}
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def _issue(client: httpx.AsyncClient, tokens: dict[Role, str], priority: str) -> int:
    r = await client.post(
        "/api/v1/issues",
        json={"title": "Payments down", "priority": priority},
        headers=auth(tokens[Role.support]),
    )
    assert r.status_code == 201, r.text
    issue_id: int = r.json()["id"]
    return issue_id


async def _later(state: AppState, minutes: float) -> list[str]:
    """Run the escalation pass as if `minutes` had passed; the channels it made deliveries
    for (they fall due at that later time, so they stay pending here)."""
    rt = jobs.runtime(state)
    async with state.sessions() as session, session.begin():
        made = await service.escalation_pass(
            session=session,
            config=state.config.response,
            base_url=rt.base_url,
            key=rt.key,
            now=utcnow() + timedelta(minutes=minutes),
        )
    return sorted(d.channel for d in made)


async def _timeline(client: httpx.AsyncClient, tokens: dict[Role, str], issue_id: int) -> list:
    r = await client.get(f"/api/v1/issues/{issue_id}/timeline", headers=auth(tokens[Role.viewer]))
    return list(r.json())


async def test_a_p1_pages_the_on_call_person_then_escalates_and_finishes(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    shift = on_call(schedule_of(state.config.response.schedules[0]), [], utcnow())
    assert shift is not None
    first = {"ann": "ann/0", "bob": "bob/0"}[shift.person]
    issue_id = await _issue(client, tokens, "P1")
    await turn(state)
    assert [o.channel.name for o in memory.sent] == [first]
    assert memory.sent[0].channel.url == f"http://127.0.0.1:9/{shift.person}"
    assert memory.sent[0].message["ack_url"].startswith("http")
    assert memory.sent[0].message["for"] == shift.person
    assert {"type": "mrkdwn", "text": f"*For:*\n{shift.person}"} in slack_body(
        memory.sent[0].message
    )["blocks"][1]["fields"]
    # nothing more until the wait is over
    assert await _later(state, 4) == []
    assert await _later(state, 6) == ["bob/0", "ops-hook"]
    # the last step's wait runs out: the policy is over, and nothing more is sent
    assert await _later(state, 12) == []
    timeline = await _timeline(client, tokens, issue_id)
    pages = [e for e in timeline if e["kind"] == "page"]
    assert len(pages) == 2
    assert f"primary: {shift.person} on call" in pages[0]["text"]
    assert "cat has no usable contact method" in pages[1]["text"]
    stopped = [e for e in timeline if e["kind"] == "escalation_stopped"]
    assert len(stopped) == 1 and "without acknowledgement" in stopped[0]["text"]
    # every delivery is in the notification log, and on the timeline once sent
    r = await client.get(
        f"/api/v1/issues/{issue_id}/notifications", headers=auth(tokens[Role.viewer])
    )
    states = sorted((d["channel"], d["state"], d["event"]) for d in r.json())
    assert states == sorted(
        [(first, "sent", "page"), ("bob/0", "pending", "page"), ("ops-hook", "pending", "page")]
    )
    assert len([e for e in timeline if e["kind"] == "notification"]) == 1


async def test_acknowledgement_stops_the_policy(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    issue_id = await _issue(client, tokens, "P1")
    await turn(state)
    assert len(memory.sent) == 1
    r = await client.post(
        f"/api/v1/issues/{issue_id}/acknowledge", headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 200
    await turn(state)
    assert await _later(state, 30) == []
    assert [o.message["event"] for o in memory.sent] == ["page"]
    async with state.sessions() as session:
        (row,) = await service.list_escalations(session=session, issue_id=issue_id)
    assert row.stop_reason == "acknowledged" and row.done == 1


async def test_sla_at_risk_advances_to_the_next_step_at_once(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    issue_id = await _issue(client, tokens, "P1")
    await turn(state)
    assert len(memory.sent) == 1
    # P1's SLA is 1h; 50 minutes in it is at risk and triage moves the escalation level
    async with state.sessions() as session, session.begin():
        changed = await triage_service.refresh_sla(
            session=session, matrix=state.matrix, now=utcnow() + timedelta(minutes=50)
        )
    assert [i.id for i in changed] == [issue_id]
    await turn(state)
    assert sorted(o.channel.name for o in memory.sent[1:]) == ["bob/0", "ops-hook"]
    # one step per SLA change: triage's escalation entry of the same moment adds none
    async with state.sessions() as session:
        (row,) = await service.list_escalations(session=session, issue_id=issue_id)
    assert row.done == 2 and row.advance_to == 2


async def test_p4_pages_nobody_and_a_rule_can_name_people_with_quiet_hours(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    p4 = await _issue(client, tokens, "P4")
    p2 = await _issue(client, tokens, "P2")
    await turn(state)
    # bob is reached at once; ann is in her quiet hours, so her P2 waits until they end
    assert [(o.channel.name, o.message["issue_id"]) for o in memory.sent] == [("bob/0", p2)]
    r = await client.get(f"/api/v1/issues/{p2}/notifications", headers=auth(tokens[Role.viewer]))
    held = next(d for d in r.json() if d["channel"] == "ann/0")
    assert held["state"] == "pending"
    # midnight in Tokyo: the end of her (whole-day) quiet hours
    assert held["next_attempt_at"].endswith(("T15:00:00Z", "T15:00:00+00:00"))
    async with state.sessions() as session:
        assert await service.list_escalations(session=session, issue_id=p4) == []
        assert await service.list_escalations(session=session, issue_id=p2) == []

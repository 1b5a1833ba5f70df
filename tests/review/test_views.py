"""Reviews, runbooks and knowledge search through HTTP: the loop from resolution to a
published review with action items, roles, bad input, and the Markdown export."""

from __future__ import annotations

import time

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.review import jobs
from tests.conftest import auth
from tests.review.helpers import incident_calls, ingest, make_incident


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(
        """
gateway:
  upstreams:
    pay: {targets: ["127.0.0.1:9"]}
  routes:
    - name: payment-status
      match: {path: /payments}
      upstream: pay
      tags: {component: payments}
review:
  runbooks:
    - name: payments-upstream
      title: Payments provider times out
      body: "Fail over: `hypercare` <b>never</b> runs HTML"
      routes: [payment-status]
"""
    )


async def _resolved_incident(state: AppState) -> int:
    start = float(int(time.time()) - 1000)
    await ingest(state.engine, incident_calls(start))
    async with state.sessions() as session, session.begin():
        incident = await make_incident(session, state.matrix, start=start)
    return incident.issue_id


async def test_job_drafts_on_resolution_and_people_finish_the_review(
    state: AppState, client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    rt = await jobs.start(state)
    issue_id = await _resolved_incident(state)
    assert await jobs.step(state, rt) == 1
    assert await jobs.step(state, rt) == 0  # each entry is read once
    viewer, responder = auth(tokens[Role.viewer]), auth(tokens[Role.responder])

    r = await client.get(f"/api/v1/issues/{issue_id}/review", headers=viewer)
    assert r.status_code == 200, r.text
    review = r.json()
    rid = review["id"]
    assert review["state"] == "draft"
    assert review["facts"]["blast_radius"]["failed_calls"] == 60
    assert review["facts"]["lead_times"]["failure_to_user_report_seconds"] == 90
    listed = (await client.get("/api/v1/reviews?state=draft", headers=viewer)).json()
    assert [(i["id"], i["failed_calls"]) for i in listed["items"]] == [(rid, 60)]

    r = await client.patch(f"/api/v1/reviews/{rid}", json={"went_well": "x"}, headers=viewer)
    assert r.status_code == 403
    r = await client.patch(
        f"/api/v1/reviews/{rid}", json={"root_cause": "Provider timeouts"}, headers=responder
    )
    assert r.status_code == 200 and r.json()["root_cause"] == "Provider timeouts"
    r = await client.post(
        f"/api/v1/reviews/{rid}/action-items",
        json={"title": "Circuit breaker", "assignee": "bob"},
        headers=responder,
    )
    assert r.status_code == 201, r.text
    item = r.json()["action_items"][0]
    assert item["priority"] == "P4" and item["status"] == "new"
    r = await client.get(f"/api/v1/issues/{item['issue_id']}", headers=viewer)
    assert "action-item" in r.json()["labels"]

    r = await client.post(
        f"/api/v1/reviews/{rid}/transitions", json={"to": "published"}, headers=responder
    )
    assert r.status_code == 409 and "in_review" in r.json()["error"]["message"]
    for to in ("in_review", "published"):
        r = await client.post(
            f"/api/v1/reviews/{rid}/transitions", json={"to": to}, headers=responder
        )
        assert r.status_code == 200, r.text
    r = await client.get(f"/api/v1/reviews/{rid}/markdown", headers=viewer)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    assert "## Root cause\n\nProvider timeouts" in r.text
    assert "| acme | 40 |" in r.text
    timeline = (await client.get(f"/api/v1/issues/{issue_id}/timeline", headers=viewer)).json()
    assert sum(e["kind"] == "review" for e in timeline) >= 4


async def test_blast_radius_of_an_issue_from_the_call_records(
    state: AppState, client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    issue_id = await _resolved_incident(state)
    viewer = auth(tokens[Role.viewer])
    r = await client.get(f"/api/v1/issues/{issue_id}/blast-radius", headers=viewer)
    assert r.status_code == 200, r.text
    found = r.json()
    radius = found["blast_radius"]
    assert found["routes"] == ["payment-status"]
    assert radius["failed_calls"] == 60 and radius["consumer_count"] == 2
    assert radius["consumers"] == [
        {"consumer": "acme", "failed_calls": 40},
        {"consumer": "globex", "failed_calls": 20},
    ]
    assert found["impact"]["duration_seconds"] == 118
    assert found["telemetry"]["complete"] is True
    r = await client.get("/api/v1/issues/999999/blast-radius", headers=viewer)
    assert r.status_code == 404
    assert (await client.get(f"/api/v1/issues/{issue_id}/blast-radius")).status_code == 401


async def test_low_priority_issues_get_no_draft_unless_asked(
    state: AppState, client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    rt = await jobs.start(state)
    async with state.sessions() as session, session.begin():
        incident = await make_incident(
            session, state.matrix, start=time.time() - 600, priority="P3"
        )
    assert await jobs.step(state, rt) == 0
    r = await client.get(
        f"/api/v1/issues/{incident.issue_id}/review", headers=auth(tokens[Role.viewer])
    )
    assert r.status_code == 404 and "POST" in r.json()["error"]["message"]
    r = await client.post(
        f"/api/v1/issues/{incident.issue_id}/review", headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 201 and r.json()["state"] == "draft"


async def test_runbooks_api_knowledge_and_search(
    state: AppState, client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    await jobs.start(state)  # loads the file's runbooks
    viewer, responder = auth(tokens[Role.viewer]), auth(tokens[Role.responder])
    r = await client.get("/api/v1/runbooks", headers=viewer)
    assert [(b["name"], b["source"]) for b in r.json()] == [("payments-upstream", "config")]
    r = await client.put(
        "/api/v1/runbooks/payments-upstream", json={"title": "x", "body": "y"}, headers=responder
    )
    assert r.status_code == 409
    body = {"name": "db-failover", "title": "Database failover", "body": "Promote the replica"}
    r = await client.post("/api/v1/runbooks", json=body, headers=responder)
    assert r.status_code == 201, r.text
    assert (await client.post("/api/v1/runbooks", json=body, headers=responder)).status_code == 409
    bad = {**body, "name": "Not A Slug"}
    r = await client.post("/api/v1/runbooks", json=bad, headers=responder)
    assert r.status_code == 422
    r = await client.get("/api/v1/knowledge/search?q=replica", headers=viewer)
    assert [h["title"] for h in r.json()["items"]] == ["Database failover"]
    r = await client.get("/api/v1/knowledge/search?q=", headers=viewer)
    assert r.status_code == 422

    issue_id = await _resolved_incident(state)
    r = await client.get(f"/api/v1/issues/{issue_id}/knowledge", headers=viewer)
    assert r.status_code == 200
    assert r.json()["matched_by"] == {"payments-upstream": ["route payment-status"]}
    r = await client.delete("/api/v1/runbooks/db-failover", headers=responder)
    assert r.status_code == 204
    r = await client.get("/api/v1/runbooks/db-failover", headers=viewer)
    assert r.status_code == 404
    assert (await client.get("/api/v1/reviews/999", headers=viewer)).status_code == 404
    assert (await client.get("/api/v1/reviews")).status_code == 401


def test_config_errors_name_the_line() -> None:
    from hypercare.errors import ConfigError

    with pytest.raises(ConfigError, match=r":2: review.priorities\[0\]: unknown priority 'P7'"):
        parse_config("review:\n  priorities: [P7]\n")
    text = (
        "review:\n  runbooks:\n    - {name: a, title: A, body: b}\n"
        "    - {name: a, title: A, body: b}\n"
    )
    with pytest.raises(ConfigError, match="duplicate runbook name 'a'"):
        parse_config(text)

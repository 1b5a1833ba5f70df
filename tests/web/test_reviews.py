"""The console's reviews, runbooks and knowledge pages, and the issue page's runbook and
workaround panel: forms post through the same services as the API."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.review import jobs
from tests.review.helpers import incident_calls, ingest, make_incident
from tests.web.conftest import Browser

Make = Callable[[Role], Awaitable[Browser]]

CONFIG = """
gateway:
  upstreams:
    pay: {targets: ["127.0.0.1:9"]}
  routes:
    - name: payment-status
      match: {path: /payments}
      upstream: pay
      tags: {component: payments}
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def _drafted(state: AppState) -> tuple[int, int]:
    rt = await jobs.start(state)
    start = float(int(time.time()) - 1000)
    await ingest(state.engine, incident_calls(start))
    async with state.sessions() as session, session.begin():
        incident = await make_incident(session, state.matrix, start=start)
    assert await jobs.step(state, rt) == 1
    return incident.issue_id, 1


async def test_review_pages_edit_action_items_publish_and_export(
    state: AppState, browser_for: Make
) -> None:
    issue_id, rid = await _drafted(state)
    viewer = await browser_for(Role.viewer)
    page = await viewer.http.get("/reviews")
    assert page.status_code == 200 and f'href="/reviews/{rid}"' in page.text
    page = await viewer.http.get(f"/issues/{issue_id}")
    assert page.status_code == 200 and "Blast radius" in page.text
    assert "<b>60</b> failed calls from <b>2</b> consumers" in page.text
    assert "<tr><td>acme</td><td>40</td></tr>" in page.text
    page = await viewer.http.get(f"/reviews/{rid}")
    assert page.status_code == 200
    assert '<dd id="failed-calls">60</dd>' in page.text
    assert "acme" in page.text and "globex" in page.text
    assert 'action="/reviews/1/edit"' not in page.text  # a viewer reads only
    r = await viewer.post(f"/reviews/{rid}/edit", {"root_cause": "x"})
    assert r.status_code == 403

    b = await browser_for(Role.responder)
    r = await b.post(
        f"/reviews/{rid}/edit",
        {"title": "Payments outage", "root_cause": "Pool <exhausted>", "went_well": "paged"},
    )
    assert r.status_code == 303, r.text
    r = await b.post(f"/reviews/{rid}/action-items", {"title": "Size the pool", "assignee": ""})
    assert r.status_code == 303, r.text
    r = await b.post(f"/reviews/{rid}/action-items", {"title": ""})
    assert r.status_code == 422
    for to in ("in_review", "published"):
        r = await b.post(f"/reviews/{rid}/transition", {"to": to})
        assert r.status_code == 303, r.text
    page = await b.http.get(f"/reviews/{rid}")
    assert "Size the pool" in page.text and ">published<" in page.text
    assert "Pool &lt;exhausted&gt;" in page.text  # published: rendered Markdown, escaped
    r = await b.post(f"/reviews/{rid}/transition", {"to": "draft"})
    assert r.status_code == 409
    export = await b.http.get(f"/reviews/{rid}/export.md")
    assert export.status_code == 200 and "# Post-incident review: Payments outage" in export.text
    issue = await b.http.get(f"/issues/{issue_id}")
    assert f'href="/reviews/{rid}"' in issue.text


async def test_runbooks_search_and_the_issue_panel(state: AppState, browser_for: Make) -> None:
    b = await browser_for(Role.responder)
    r = await b.post(
        "/runbooks",
        {
            "name": "payments-pool",
            "title": "Payments pool exhausted",
            "components": "payments",
            "body": "1. Raise the **pool** size\n<script>alert(1)</script>",
        },
    )
    assert r.status_code == 303, r.text
    page = await b.http.get("/runbooks")
    assert "<strong>pool</strong>" in page.text
    assert "<script>alert(1)</script>" not in page.text
    r = await b.post("/runbooks", {"name": "Bad Name", "title": "x", "body": "y"})
    assert r.status_code == 422
    r = await b.post(
        "/runbooks/payments-pool",
        {"title": "Payments pool exhausted", "components": "payments", "body": "Restart pool"},
    )
    assert r.status_code == 303
    found = await b.http.get("/knowledge", params={"q": "restart"})
    assert 'href="/runbooks#runbook-payments-pool"' in found.text
    assert "<mark>Restart</mark>" in found.text

    async with state.sessions() as session, session.begin():
        incident = await make_incident(session, state.matrix, start=time.time() - 600)
    page = await b.http.get(f"/issues/{incident.issue_id}")
    assert "Runbooks and past workarounds" in page.text
    assert "matches component payments" in page.text
    assert "Raise" not in page.text and "Restart pool" in page.text
    assert "No failing call recorded on payment-status" in page.text
    r = await b.post(f"/issues/{incident.issue_id}/review", {})
    assert r.status_code == 303 and r.headers["location"].startswith("/reviews/")
    r = await b.post("/runbooks/payments-pool/delete", {})
    assert r.status_code == 303
    assert "payments-pool" not in (await b.http.get("/runbooks")).text

"""User and team feedback over HTTP: tickets, surveys and scores, notes, handovers, and the
public widget intake (origin, rate limit, honeypot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hypercare.auth.rules import Role
from hypercare.feedback import scores
from hypercare.feedback.ratelimit import RateLimiter
from tests.conftest import auth
from tests.feedback.helpers import ALLOWED_ORIGIN, WIDGET_KEY

WIDGET_URL = f"/api/v1/feedback?key={WIDGET_KEY}"


async def test_ticket_opens_an_issue_with_request_ids(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    body = {
        "type": "ticket",
        "subject": "Payment stuck on 'processing'",
        "description": "Customer paid twice",
        "requester": "jane@example.com",
        "channel": "email",
        "severity": "high",
        "url": "https://shop.example.com/checkout/pay?x=1",
        "request_ids": ["req-1", "req-2"],
    }
    r = await client.post("/api/v1/feedback", json=body, headers=auth(tokens[Role.support]))
    assert r.status_code == 202, r.text
    issue_id = r.json()["issues"][0]
    detail = (
        await client.get(f"/api/v1/issues/{issue_id}", headers=auth(tokens[Role.viewer]))
    ).json()
    assert detail["priority"] == "P2" and detail["route"] == "/checkout/pay"
    sig = detail["signals"][0]
    assert sig["kind"] == "user" and sig["source"] == "ticket"
    assert sig["request_ids"] == ["req-1", "req-2"] and sig["labels"]["channel"] == "email"
    r = await client.post(
        "/api/v1/feedback",
        json={"type": "feature", "subject": "Dark mode"},
        headers=auth(tokens[Role.support]),
    )
    issue = (
        await client.get(
            f"/api/v1/issues/{r.json()['issues'][0]}", headers=auth(tokens[Role.viewer])
        )
    ).json()
    assert issue["priority"] == "P4"


async def test_feedback_needs_support_role_and_valid_input(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    r = await client.post("/api/v1/feedback", json={"type": "ticket", "subject": "x"})
    assert r.status_code == 401
    r = await client.post(
        "/api/v1/feedback",
        json={"type": "ticket", "subject": "x"},
        headers=auth(tokens[Role.viewer]),
    )
    assert r.status_code == 403
    support = auth(tokens[Role.support])
    for bad, needle in (
        ({"type": "nps", "score": 11}, "nps score must be from 0 to 10"),
        ({"type": "csat", "score": 0}, "csat score must be from 1 to 5"),
        ({"type": "ticket"}, "subject"),
        ({"type": "nope"}, "type"),
        ({"type": "ticket", "subject": "x", "channel": "fax"}, "channel"),
    ):
        r = await client.post("/api/v1/feedback", json=bad, headers=support)
        assert r.status_code == 422, bad
        assert needle in r.json()["error"]["message"]
    dead = await client.get("/api/v1/intake/rejected", headers=auth(tokens[Role.responder]))
    assert dead.json()["total"] == 5


async def test_survey_scores_over_time(client: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
    support = auth(tokens[Role.support])
    for score in (10, 9, 8, 3):
        r = await client.post(
            "/api/v1/feedback", json={"type": "nps", "score": score}, headers=support
        )
        assert r.status_code == 202 and r.json()["issues"] == []
    for score in (5, 4, 2):
        await client.post(
            "/api/v1/feedback", json={"type": "csat", "score": score}, headers=support
        )
    now = datetime.now(UTC)
    params = {
        "from": (now - timedelta(hours=2)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
        "step": "1h",
    }
    r = await client.get(
        "/api/v1/feedback/scores", params=params, headers=auth(tokens[Role.viewer])
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["total"]["nps"] == 25.0 and data["total"]["nps_responses"] == 4
    assert data["total"]["promoters"] == 2 and data["total"]["detractors"] == 1
    assert data["total"]["csat"] == pytest.approx(66.67) and data["total"]["csat_responses"] == 3
    assert len(data["buckets"]) == 3
    assert sum(b["nps_responses"] for b in data["buckets"]) == 4
    r = await client.get(
        "/api/v1/feedback/scores",
        params={"step": "1s", "from": "2026-01-01T00:00:00Z"},
        headers=auth(tokens[Role.viewer]),
    )
    assert r.status_code == 422 and "buckets" in r.json()["error"]["message"]


def test_nps_and_csat_math() -> None:
    assert scores.nps([]).score is None
    assert scores.nps([10] * 10).score == 100.0
    assert scores.nps([0, 6]).score == -100.0
    assert scores.nps([7, 8]).score == 0.0
    tally = scores.nps([10, 9, 8, 7, 6, 0, 9])
    assert (tally.promoters, tally.passives, tally.detractors) == (3, 2, 2)
    assert tally.score == pytest.approx(100 * (3 - 2) / 7, abs=0.01)
    assert scores.csat([5, 4, 3, 2]).score == 50.0
    assert scores.csat([]).score is None


def test_rate_limiter_window() -> None:
    limiter = RateLimiter(limit=2, window_seconds=60)
    assert limiter.allow("a", now=0) is None and limiter.allow("a", now=1) is None
    assert limiter.allow("a", now=2) == pytest.approx(58)
    assert limiter.allow("b", now=2) is None
    assert limiter.allow("a", now=60.5) is None


async def test_team_notes_and_handover_draft(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    support, responder = auth(tokens[Role.support]), auth(tokens[Role.responder])
    r = await client.post(
        "/api/v1/issues", json={"title": "Checkout errors", "priority": "P1"}, headers=support
    )
    p1 = r.json()["id"]
    await client.post("/api/v1/issues", json={"title": "Typo", "priority": "P4"}, headers=support)
    await client.patch(
        f"/api/v1/issues/{p1}", json={"assignee": "dana", "workaround": "retry"}, headers=responder
    )
    await client.post(
        f"/api/v1/issues/{p1}/transitions", json={"to": "investigating"}, headers=responder
    )
    r = await client.post(
        "/api/v1/team/notes",
        json={
            "type": "observation",
            "text": "Queue depth rising on payments\nmore",
            "component": "payments",
        },
        headers=support,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/team/notes",
        json={"type": "standup", "text": "focus on checkout", "issue_id": p1},
        headers=support,
    )
    assert r.status_code == 201 and r.json()["issues"] == [p1]
    r = await client.post(
        "/api/v1/team/notes",
        json={"type": "runbook", "text": "x", "issue_id": 99999},
        headers=support,
    )
    assert r.status_code == 404
    draft = (await client.get("/api/v1/handovers/draft", headers=auth(tokens[Role.viewer]))).json()
    assert [i["id"] for i in draft["open_issues"]["P1"]] == [p1]
    assert draft["open_issues"]["P1"][0]["assignee"] == "dana"
    assert "P4" in draft["open_issues"] and "P2" not in draft["open_issues"]
    assert any("Checkout errors" in s for s in draft["investigations"])
    assert any("retry" in s for s in draft["mitigations"])
    assert any("Queue depth rising" in s for s in draft["watch"])
    draft["notes"] = "quiet night otherwise"
    r = await client.post("/api/v1/handovers", json=draft, headers=support)
    assert r.status_code == 201, r.text
    r = await client.get("/api/v1/signals", params={"kind": "team"}, headers=support)
    assert {s["source"] for s in r.json()["items"]} == {"observation", "standup", "handover"}


async def test_widget_intake_origin_honeypot_and_no_readback(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    body = {
        "category": "bug",
        "message": "Pay button does nothing",
        "email": "u@example.com",
        "nps": 3,
        "url": "http://app.localhost:8080/cart",
        "user_agent": "test",
        "request_ids": ["gw-1"],
    }
    origin = {"origin": ALLOWED_ORIGIN}
    r = await client.options(WIDGET_URL, headers=origin | {"access-control-request-method": "POST"})
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    r = await client.options(WIDGET_URL, headers={"origin": "http://evil.localhost"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = await client.post(WIDGET_URL, json=body, headers=origin)
    assert r.status_code == 202 and r.json() == {"status": "received"}
    assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    r = await client.post(WIDGET_URL, json=body, headers={"origin": "http://evil.localhost"})
    assert r.status_code == 403
    r = await client.post("/api/v1/feedback?key=wk_unknown123", json=body, headers=origin)
    assert r.status_code == 401
    r = await client.post(WIDGET_URL, json=body | {"website": "spam.example"}, headers=origin)
    assert r.status_code == 202
    r = await client.post(WIDGET_URL, json={"category": "bug"}, headers=origin)
    assert r.status_code == 422
    r = await client.post(WIDGET_URL, json=body | {"message": "x" * 20_000}, headers=origin)
    assert r.status_code == 413
    items = (
        await client.get(
            "/api/v1/signals", params={"kind": "user"}, headers=auth(tokens[Role.viewer])
        )
    ).json()["items"]
    assert sorted(s["source"] for s in items) == ["bug", "nps"]  # honeypot and bad input not stored
    bug = next(s for s in items if s["source"] == "bug")
    assert bug["request_ids"] == ["gw-1"] and bug["route"] == "/cart" and bug["issue_id"]
    assert bug["labels"]["via"] == "widget" and bug["user_ref"] == "u@example.com"


async def test_widget_rate_limit_per_ip(client: httpx.AsyncClient) -> None:
    body = {"category": "praise", "message": "nice"}
    origin = {"origin": ALLOWED_ORIGIN}
    statuses = [
        (await client.post(WIDGET_URL, json=body, headers=origin)).status_code for _ in range(11)
    ]
    assert statuses[:10] == [202] * 10 and statuses[10] == 429
    r = await client.post(WIDGET_URL, json=body, headers=origin)
    assert int(r.headers["retry-after"]) >= 1


async def test_widget_script_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/widget.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/javascript")
    assert "HypercareFeedback" in r.text and len(r.content) < 16_000

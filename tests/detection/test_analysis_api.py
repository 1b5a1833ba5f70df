"""Correlation, corrections, deployments and overrides through the API, on both stores."""

from __future__ import annotations

from typing import Any

import httpx

from hypercare.auth.rules import Role
from tests.conftest import auth

Tokens = dict[Role, str]


async def alert(client: httpx.AsyncClient, tokens: Tokens, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/api/v1/feedback", json=body, headers=auth(tokens[Role.support]))
    assert r.status_code == 202, r.text
    data: dict[str, Any] = r.json()
    return data


async def detail(client: httpx.AsyncClient, tokens: Tokens, issue_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/issues/{issue_id}", headers=auth(tokens[Role.viewer]))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def ticket(subject: str, **kw: Any) -> dict[str, Any]:
    return {"type": "ticket", "subject": subject, "channel": "email", **kw}


async def test_tickets_about_the_same_route_join_one_issue_with_reasons(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    first = await alert(
        client,
        tokens,
        ticket("Payment status never updates", url="https://shop.example/payment/status"),
    )
    second = await alert(client, tokens, ticket("payment status updates are delayed"))
    assert first["issues"] == second["issues"]
    issue = await detail(client, tokens, first["issues"][0])
    assert issue["route"] == "payment-status"
    assert issue["component"] == "payments"
    reasons = [r for link in issue["links"] for r in link["reasons"]]
    assert "opened this issue" in reasons
    assert any(r.startswith("text mentions payment-status") for r in reasons)


async def test_unrelated_feedback_opens_its_own_issue(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    a = await alert(client, tokens, ticket("Payment status never updates"))
    b = await alert(client, tokens, ticket("Catalog search returns nothing"))
    c = await alert(client, tokens, ticket("Love the new colours"))
    assert len({a["issues"][0], b["issues"][0], c["issues"][0]}) == 3


async def test_split_signal_is_never_reattached_and_unlink_detaches(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    first = await alert(client, tokens, ticket("Payment status never updates"))
    second = await alert(client, tokens, ticket("Payment status stuck"))
    issue_id = first["issues"][0]
    assert second["issues"] == [issue_id]
    signal_id = second["signals"][0]
    r = await client.post(
        f"/api/v1/signals/{signal_id}/split", json={}, headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 201, r.text
    new_issue = r.json()["id"]
    assert new_issue != issue_id
    old = await detail(client, tokens, issue_id)
    assert signal_id not in [s["id"] for s in old["signals"]]
    assert any(e for e in old["links"] if e["signal_id"] == first["signals"][0])
    # a support role may not correct links
    r = await client.post(
        f"/api/v1/signals/{first['signals'][0]}/unlink", headers=auth(tokens[Role.support])
    )
    assert r.status_code == 403
    r = await client.post(
        f"/api/v1/signals/{first['signals'][0]}/unlink", headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 200
    assert r.json()["issue_id"] is None
    r = await client.post(
        f"/api/v1/signals/{first['signals'][0]}/unlink", headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 409


async def test_merge_moves_signals_and_closes_the_duplicate(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    a = (await alert(client, tokens, ticket("Payment status never updates")))["issues"][0]
    b = (await alert(client, tokens, ticket("Catalog search empty")))["issues"][0]
    r = await client.post(
        f"/api/v1/issues/{b}/merge", json={"into": a}, headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 200, r.text
    merged = await detail(client, tokens, a)
    assert len(merged["signals"]) == 2
    closed = await detail(client, tokens, b)
    assert closed["status"] == "closed"
    assert closed["close_reason"] == f"duplicate of #{a} (merged)"
    r = await client.post(
        f"/api/v1/issues/{a}/merge", json={"into": a}, headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 422


async def test_a_person_s_priority_is_not_undone_by_automation(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    first = await alert(client, tokens, ticket("Payment status never updates", severity="low"))
    issue_id = first["issues"][0]
    r = await client.patch(
        f"/api/v1/issues/{issue_id}", json={"priority": "P3"}, headers=auth(tokens[Role.responder])
    )
    assert r.json()["priority"] == "P3"
    for i in range(6):  # many distinct users would otherwise raise it
        await alert(client, tokens, ticket("payment status broken", requester=f"u{i}@x.io"))
    timeline = (
        await client.get(f"/api/v1/issues/{issue_id}/timeline", headers=auth(tokens[Role.viewer]))
    ).json()
    assert (await detail(client, tokens, issue_id))["priority"] == "P3", [
        (e["actor"], e["kind"], e["text"]) for e in timeline
    ]


async def test_many_reporters_raise_the_priority_automatically(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    first = await alert(client, tokens, ticket("Payment status never updates", severity="low"))
    issue_id = first["issues"][0]
    start = (await detail(client, tokens, issue_id))["priority"]
    for i in range(6):
        await alert(client, tokens, ticket("payment status broken", requester=f"u{i}@x.io"))
    issue = await detail(client, tokens, issue_id)
    assert issue["priority"] < start
    timeline = (
        await client.get(f"/api/v1/issues/{issue_id}/timeline", headers=auth(tokens[Role.viewer]))
    ).json()
    assert any(e["kind"] == "auto_priority" and "users reported it" in e["text"] for e in timeline)


async def test_deployments_are_recorded_on_linked_issues(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    issue_id = (await alert(client, tokens, ticket("Payment status never updates")))["issues"][0]
    body = {"service": "payments", "version": "2.4.1", "kind": "hotfix", "issue_ids": [issue_id]}
    r = await client.post("/api/v1/deployments", json=body, headers=auth(tokens[Role.support]))
    assert r.status_code == 403
    r = await client.post("/api/v1/deployments", json=body, headers=auth(tokens[Role.responder]))
    assert r.status_code == 201
    listed = (await client.get("/api/v1/deployments", headers=auth(tokens[Role.viewer]))).json()
    assert [d["version"] for d in listed] == ["2.4.1"]
    timeline = (
        await client.get(f"/api/v1/issues/{issue_id}/timeline", headers=auth(tokens[Role.viewer]))
    ).json()
    assert timeline[-1]["kind"] == "deployment"
    r = await client.post(
        "/api/v1/deployments",
        json={**body, "issue_ids": [999]},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 404
    r = await client.post(
        "/api/v1/deployments", json={**body, "kind": "yolo"}, headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 422


async def test_detection_live_lists_rules(client: httpx.AsyncClient, tokens: Tokens) -> None:
    r = await client.get("/api/v1/detection/live", headers=auth(tokens[Role.viewer]))
    assert r.status_code == 200
    names = {rule["name"] for rule in r.json()["rules"]}
    assert {"5xx-rate", "p95-vs-baseline", "traffic-drop"} <= names
    assert (await client.get("/api/v1/detection/live")).status_code == 401


async def test_rules_can_be_added_and_removed_through_the_api(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    rule = {
        "name": "checkout-p99",
        "metric": "p99",
        "threshold": 800,
        "for": "10s",
        "routes": ["payment-status"],
        "severity": "critical",
    }
    r = await client.post(
        "/api/v1/detection/rules", json=rule, headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 403
    r = await client.post("/api/v1/detection/rules", json=rule, headers=auth(tokens[Role.admin]))
    assert r.status_code == 201, r.text
    assert r.json()["for_seconds"] == 10
    r = await client.post("/api/v1/detection/rules", json=rule, headers=auth(tokens[Role.admin]))
    assert r.status_code == 409
    listed = (await client.get("/api/v1/detection/rules", headers=auth(tokens[Role.viewer]))).json()
    origins = {x["name"]: x["origin"] for x in listed}
    assert origins["checkout-p99"] == "api"
    assert origins["5xx-rate"] == "default"
    bad = {**rule, "name": "x", "metric": "p42"}
    r = await client.post("/api/v1/detection/rules", json=bad, headers=auth(tokens[Role.admin]))
    assert r.status_code == 422
    assert "metric" in r.json()["error"]["message"]
    r = await client.delete(
        "/api/v1/detection/rules/checkout-p99", headers=auth(tokens[Role.admin])
    )
    assert r.status_code == 204
    r = await client.delete(
        "/api/v1/detection/rules/checkout-p99", headers=auth(tokens[Role.admin])
    )
    assert r.status_code == 404


async def test_a_security_rule_with_a_minimum_of_events_through_the_api(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    rule = {
        "name": "login-401",
        "metric": "auth_failure_share",
        "threshold": 0.3,
        "min_events": 15,
        "category": "security",
    }
    r = await client.post("/api/v1/detection/rules", json=rule, headers=auth(tokens[Role.admin]))
    assert r.status_code == 201, r.text
    assert (r.json()["min_events"], r.json()["category"]) == (15, "security")
    listed = (await client.get("/api/v1/detection/rules", headers=auth(tokens[Role.viewer]))).json()
    by_name = {x["name"]: x for x in listed}
    assert by_name["auth-failure-share"]["category"] == "security"
    assert by_name["p95-above-bound"]["min_requests"] == 100
    bad = {**rule, "name": "x", "category": "misc"}
    r = await client.post("/api/v1/detection/rules", json=bad, headers=auth(tokens[Role.admin]))
    assert r.status_code == 422
    assert "category" in r.json()["error"]["message"]

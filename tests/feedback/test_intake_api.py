"""System feedback over HTTP: tokens, adapters, dedup into issues, dead letters, replay."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import httpx

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.errors import NotFound
from hypercare.triage.models import Issue
from tests.conftest import auth
from tests.feedback.helpers import (
    AM_TOKEN,
    PD_TOKEN,
    SENTRY_SECRET,
    SENTRY_TOKEN,
    fixture_bytes,
    fixture_json,
)

AM_URL = "/api/v1/integrations/am/webhook"
JSON = {"content-type": "application/json"}


async def test_alertmanager_fire_dedup_resolve_and_issue_detail(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    firing = fixture_bytes("alertmanager_v4_firing_two_alerts.json")
    r = await client.post(AM_URL, content=firing, headers=auth(AM_TOKEN) | JSON)
    assert r.status_code == 202, r.text
    first = r.json()
    assert len(first["signals"]) == 2 and len(first["issues"]) == 2
    r = await client.post(f"{AM_URL}?token={AM_TOKEN}", content=firing, headers=JSON)
    assert r.status_code == 202 and r.json()["issues"] == first["issues"]
    resolved = fixture_json("alertmanager_v4_firing_two_alerts.json")
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
    r = await client.post(AM_URL, json=resolved, headers=auth(AM_TOKEN))
    assert r.status_code == 202
    viewer = auth(tokens[Role.viewer])
    detail = (await client.get(f"/api/v1/issues/{first['issues'][0]}", headers=viewer)).json()
    assert detail["priority"] == "P1"  # severity critical
    assert detail["reporter"] == "Hypercare detection"
    assert len(detail["signals"]) == 3
    assert detail["signal_groups"][0]["count"] == 3
    assert detail["signal_groups"][0]["status"] == "resolved"
    assert detail["signals"][0]["raw"]["fingerprint"] == "a1bc48475b20e73d"
    # lists keep the short form
    listed = (await client.get("/api/v1/issues", headers=viewer)).json()["items"][0]
    assert "signals" not in listed
    r = await client.get(
        "/api/v1/signals", params={"source": "alertmanager", "status": "resolved"}, headers=viewer
    )
    assert r.json()["total"] == 2
    r = await client.get("/api/v1/signals", params={"issue": first["issues"][0]}, headers=viewer)
    assert r.json()["total"] == 3
    sid = first["signals"][0]
    r = await client.get(f"/api/v1/signals/{sid}/delivery", headers=auth(tokens[Role.responder]))
    assert r.content == firing  # the raw delivery, verbatim


async def test_integration_tokens_are_checked(client: httpx.AsyncClient) -> None:
    body = fixture_bytes("alertmanager_v4_firing_single.json")
    r = await client.post(AM_URL, content=body)
    assert r.status_code == 401 and "token" in r.json()["error"]["message"]
    r = await client.post(AM_URL, content=body, headers=auth(PD_TOKEN))
    assert r.status_code == 401
    r = await client.post("/api/v1/integrations/nope/webhook", content=body, headers=auth(AM_TOKEN))
    assert r.status_code == 404


async def test_pagerduty_compatible_endpoint(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    url = "/api/v1/integrations/pd/v2/enqueue"
    trigger = fixture_json("pagerduty_events_v2_trigger.json") | {"routing_key": PD_TOKEN}
    r = await client.post(url, json=trigger)  # the routing key is the token
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "success" and body["message"] == "Event processed"
    assert body["dedup_key"] == "samplekeyhere"
    issue_id = body["issues"][0]
    r = await client.post(
        url, json={"routing_key": PD_TOKEN, "dedup_key": "samplekeyhere", "event_action": "resolve"}
    )
    assert r.status_code == 202 and r.json()["issues"] == [issue_id]
    r = await client.post(url, json={"routing_key": PD_TOKEN, "event_action": "resolve"})
    assert r.status_code == 400
    bad = r.json()
    assert bad["status"] == "invalid event" and "dedup_key" in bad["errors"][0]
    assert bad["error"]["code"] == "rejected_payload"
    r = await client.post(
        "/api/v1/integrations/am/v2/enqueue", json=trigger, headers=auth(AM_TOKEN)
    )
    assert r.status_code == 404


async def test_sentry_signature_through_http(client: httpx.AsyncClient) -> None:
    body = fixture_bytes("sentry_event_alert_triggered.json")
    sig = hmac.new(SENTRY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    url = "/api/v1/integrations/sentry/webhook"
    headers = auth(SENTRY_TOKEN) | JSON | {"sentry-hook-resource": "event_alert"}
    r = await client.post(url, content=body, headers=headers | {"sentry-hook-signature": sig})
    assert r.status_code == 202, r.text
    r = await client.post(url, content=body, headers=headers | {"sentry-hook-signature": "bad"})
    assert r.status_code == 401


async def test_dead_letter_and_replay_after_fixing_the_mapping(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    admin = auth(tokens[Role.admin])
    r = await client.post(
        "/api/v1/integrations",
        json={"type": "webhook", "name": "Status checker", "mapping": {"summary": "title"}},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["url"].endswith(f"/api/v1/integrations/{created['id']}/webhook")
    assert created["url_with_token"].endswith(created["token"])
    listed = (await client.get("/api/v1/integrations", headers=admin)).json()
    assert {i["id"] for i in listed} >= {"am", "pd", created["id"]}
    assert all("token" not in i for i in listed)

    payload = json.dumps({"check": {"name": "login down", "state": "down"}}).encode()
    hook = {"Authorization": f"Bearer {created['token']}", "X-Api-Key": "secret-value"} | JSON
    r = await client.post(
        created["url"].removeprefix("http://console"), content=payload, headers=hook
    )
    assert r.status_code == 422
    assert "'title' is missing" in r.json()["error"]["message"]
    responder = auth(tokens[Role.responder])
    dead = (await client.get("/api/v1/intake/rejected", headers=responder)).json()
    assert dead["total"] == 1
    letter = dead["items"][0]
    assert letter["body"] == payload.decode() and "'title'" in letter["reason"]
    assert letter["headers"]["authorization"] == "[redacted]"
    assert letter["headers"]["x-api-key"] == "[redacted]"
    assert created["token"] not in json.dumps(dead)

    r = await client.post(f"/api/v1/intake/rejected/{letter['id']}/replay", headers=responder)
    assert r.status_code == 422 and "still rejected" in r.json()["error"]["message"]
    r = await client.patch(
        f"/api/v1/integrations/{created['id']}",
        json={
            "mapping": {"summary": "check.name", "status": "check.state", "resolved_values": ["up"]}
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/intake/rejected/{letter['id']}/replay", headers=responder)
    assert r.status_code == 200, r.text
    assert len(r.json()["signals"]) == 1 and len(r.json()["issues"]) == 1
    assert (await client.get("/api/v1/intake/rejected", headers=responder)).json()["total"] == 0
    r = await client.post(f"/api/v1/intake/rejected/{letter['id']}/replay", headers=responder)
    assert r.status_code == 422  # nothing left to replay
    sig = (await client.get("/api/v1/signals", headers=responder)).json()["items"][0]
    assert sig["summary"] == "login down" and sig["status"] == "firing"


async def test_malformed_payloads_never_500(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    for body in (b"", b"{", b"[]", b'{"alerts": 5}', b"\x00\x01"):
        r = await client.post(AM_URL, content=body, headers=auth(AM_TOKEN))
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["message"]
    dead = await client.get("/api/v1/intake/rejected", headers=auth(tokens[Role.responder]))
    assert dead.json()["total"] == 5


async def test_oversized_body_is_refused(client: httpx.AsyncClient) -> None:
    big = b"x" * (1024 * 1024 + 1)
    r = await client.post(AM_URL, content=big, headers=auth(AM_TOKEN))
    assert r.status_code == 413


async def test_roles_on_admin_endpoints(client: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
    body = {"type": "alertmanager", "name": "x"}
    r = await client.post("/api/v1/integrations", json=body, headers=auth(tokens[Role.responder]))
    assert r.status_code == 403
    r = await client.get("/api/v1/intake/rejected", headers=auth(tokens[Role.viewer]))
    assert r.status_code == 403
    r = await client.get("/api/v1/signals", headers=auth(tokens[Role.viewer]), params={"kind": "x"})
    assert r.status_code == 422
    r = await client.post(
        "/api/v1/integrations",
        json={"type": "webhook", "name": "no mapping"},
        headers=auth(tokens[Role.admin]),
    )
    assert r.status_code == 422 and "mapping" in r.json()["error"]["message"]


async def test_disable_enable_and_delete_an_integration(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    admin = auth(tokens[Role.admin])
    r = await client.post(
        "/api/v1/integrations",
        json={"type": "webhook", "name": "Checker", "mapping": {"summary": "title"}},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    url = created["url"].removeprefix("http://console")
    hook = auth(created["token"]) | JSON
    body = json.dumps({"title": "login down"}).encode()
    responder = auth(tokens[Role.responder])

    async def signals() -> int:
        r = await client.get("/api/v1/signals", headers=responder)
        return int(r.json()["total"])

    before = await signals()
    r = await client.patch(
        f"/api/v1/integrations/{created['id']}", json={"enabled": False}, headers=admin
    )
    assert r.status_code == 200 and r.json()["disabled"] is True
    r = await client.post(url, content=body, headers=hook)
    assert r.status_code == 403
    message = r.json()["error"]["message"]
    assert "disabled" in message and "NOT stored" in message and "resend" in message
    assert await signals() == before
    r = await client.patch(
        f"/api/v1/integrations/{created['id']}",
        json={"enabled": True, "disabled": True},
        headers=admin,
    )
    assert r.status_code == 422
    r = await client.patch(
        f"/api/v1/integrations/{created['id']}", json={"mapping": None}, headers=admin
    )
    assert r.status_code == 422 and "mapping" in r.json()["error"]["message"]
    r = await client.patch(
        f"/api/v1/integrations/{created['id']}", json={"enabled": True}, headers=admin
    )
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert (await client.post(url, content=body, headers=hook)).status_code == 202
    assert await signals() == before + 1

    r = await client.delete(f"/api/v1/integrations/{created['id']}", headers=responder)
    assert r.status_code == 403
    r = await client.delete(f"/api/v1/integrations/{created['id']}", headers=admin)
    assert r.status_code == 204
    assert (await client.post(url, content=body, headers=hook)).status_code == 404
    listed = (await client.get("/api/v1/integrations", headers=admin)).json()
    assert created["id"] not in {i["id"] for i in listed}
    assert await signals() == before + 1  # what it delivered stays
    r = await client.delete(f"/api/v1/integrations/{created['id']}", headers=admin)
    assert r.status_code == 404
    r = await client.delete("/api/v1/integrations/am", headers=admin)
    assert r.status_code == 409 and "config file" in r.json()["error"]["message"]


async def test_concurrent_deliveries_keep_every_signal(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    def body(n: int) -> bytes:
        alerts = [
            {
                "status": "firing",
                "labels": {"alertname": f"A{n}-{i}", "severity": "warning"},
                "fingerprint": f"fp-{n}-{i}",
                "startsAt": "2026-11-27T10:00:00Z",
            }
            for i in range(5)
        ]
        return json.dumps({"version": "4", "alerts": alerts}).encode()

    results = await asyncio.gather(
        *(client.post(AM_URL, content=body(n), headers=auth(AM_TOKEN)) for n in range(6))
    )
    assert [r.status_code for r in results] == [202] * 6
    ids = [s for r in results for s in r.json()["signals"]]
    assert len(ids) == len(set(ids)) == 30
    page = await client.get(
        "/api/v1/signals", params={"limit": 100}, headers=auth(tokens[Role.viewer])
    )
    assert page.json()["total"] == 30
    assert len({s["issue_id"] for s in page.json()["items"]}) == 30


async def test_a_failing_delivery_does_not_lose_concurrent_ones(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    """Concurrent deliveries share a commit (group commit); one that fails in the attach step
    gets its error and stores nothing, and the others are all stored and acknowledged."""
    attach = state.attach
    assert attach is not None

    async def failing(**kwargs: Any) -> Issue | None:
        if kwargs["signal"].dedup_key.endswith("fp-boom"):
            raise NotFound("no issue for this alert")
        return await attach(**kwargs)

    state.attach = failing

    def body(name: str) -> bytes:
        alerts = [{"status": "firing", "labels": {"alertname": name}, "fingerprint": f"fp-{name}"}]
        return json.dumps({"version": "4", "alerts": alerts}).encode()

    names = ["a", "b", "boom", "c", "d"]
    results = await asyncio.gather(
        *(client.post(AM_URL, content=body(n), headers=auth(AM_TOKEN)) for n in names)
    )
    assert [r.status_code for r in results] == [202, 202, 404, 202, 202]
    assert results[2].json()["error"]["message"] == "no issue for this alert"
    page = await client.get(
        "/api/v1/signals", params={"limit": 100}, headers=auth(tokens[Role.viewer])
    )
    stored = {s["id"]: s for s in page.json()["items"]}
    acknowledged = [i for r in results if r.status_code == 202 for i in r.json()["signals"]]
    assert sorted(stored) == sorted(acknowledged) and len(acknowledged) == 4
    assert all(s["issue_id"] is not None for s in stored.values())


async def test_concurrent_first_sightings_of_one_key_open_one_issue(
    client: httpx.AsyncClient,
) -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "Same", "severity": "critical"},
        "fingerprint": "same-fp",
    }
    body = json.dumps({"version": "4", "alerts": [alert]}).encode()
    results = await asyncio.gather(
        *(client.post(AM_URL, content=body, headers=auth(AM_TOKEN)) for _ in range(6))
    )
    assert [r.status_code for r in results] == [202] * 6
    assert len({r.json()["issues"][0] for r in results}) == 1


async def test_nul_characters_and_nan_do_not_break_the_store(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "Nul\u0000Name", "severity": "warn\u0000ing"},
        "annotations": {"summary": "bad \u0000 byte"},
    }
    r = await client.post(AM_URL, json={"alerts": [alert]}, headers=auth(AM_TOKEN))
    assert r.status_code == 202, r.text
    sig = (await client.get("/api/v1/signals", headers=auth(tokens[Role.viewer]))).json()["items"][
        0
    ]
    assert sig["summary"] == "NulName: bad  byte" and sig["labels"]["severity"] == "warning"
    r = await client.post(
        AM_URL, content=b'{"alerts": [{"labels": {"a": NaN}}]}', headers=auth(AM_TOKEN)
    )
    assert r.status_code == 422 and "NaN" in r.json()["error"]["message"]

"""The launch API: list, state changes, SLOs, exit check, history and reports."""

from __future__ import annotations

import httpx

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.store.base import utcnow
from tests.conftest import auth
from tests.launch.conftest import minute_row


async def test_launches_state_and_scorecard(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState
) -> None:
    viewer, responder = auth(tokens[Role.viewer]), auth(tokens[Role.responder])
    assert (await client.get("/api/v1/launches")).status_code == 401
    r = await client.get("/api/v1/launches", headers=viewer)
    assert r.status_code == 200
    (launch,) = r.json()
    assert launch["name"] == "checkout-v2" and launch["roster"]["triage"]["accountable"] == "lee"
    assert launch["exit_criteria"][1] == {"slo_met": {"for": "P2D", "slos": []}}

    r = await client.get("/api/v1/launches/nope", headers=viewer)
    assert r.status_code == 404 and "known launches: checkout-v2" in r.json()["error"]["message"]

    # the calendar says exit_review (the launch ended in February 2026)
    assert launch["state"] == "exit_review"
    r = await client.post(
        "/api/v1/launches/checkout-v2/state", json={"to": "exited"}, headers=viewer
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/launches/checkout-v2/state", json={"to": "planned"}, headers=responder
    )
    assert (
        r.status_code == 409 and "allowed: active, exited, extended" in r.json()["error"]["message"]
    )
    r = await client.post(
        "/api/v1/launches/checkout-v2/state", json={"to": "extended"}, headers=responder
    )
    assert r.status_code == 409 and "new end" in r.json()["error"]["message"]
    end = (utcnow().replace(microsecond=0)).isoformat()
    r = await client.post(
        "/api/v1/launches/checkout-v2/state",
        json={"to": "extended", "end": end, "note": "one more week"},
        headers=responder,
    )
    assert r.status_code == 200 and r.json()["state"] == "extended"

    async with state.sessions() as s, s.begin():
        now = utcnow()
        s.add_all([minute_row("payment-status", int(now.timestamp()) - 120, 100, 30, 50)])
    r = await client.get("/api/v1/launches/checkout-v2/slos", headers=viewer)
    slos = {s["name"]: s for s in r.json()}
    assert slos["avail"]["calls"] == 100 and slos["avail"]["bad"] == 30
    assert slos["avail"]["burn"]["action"] == "page"

    r = await client.get("/api/v1/launches/checkout-v2/exit-check", headers=viewer)
    card = r.json()
    assert r.status_code == 200 and card["passed"] is False
    kinds = {x["kind"]: x for x in card["results"]}
    assert kinds["metric"]["evidence"]["value"] == 0.3 and not kinds["metric"]["passed"]
    r = await client.get("/api/v1/launches/checkout-v2/evaluations", headers=viewer)
    assert [e["passed"] for e in r.json()] == [False]

    r = await client.get("/api/v1/launches/checkout-v2/report?format=md&kind=final", headers=viewer)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    assert "| payment-status | 100 | 30 | 30.00% |" in r.text
    r = await client.get("/api/v1/launches/checkout-v2/report", headers=viewer)
    assert "default-src 'none'" in r.headers["content-security-policy"] and "<svg" in r.text
    r = await client.get("/api/v1/launches/checkout-v2/report?kind=weekly", headers=viewer)
    assert r.status_code == 422

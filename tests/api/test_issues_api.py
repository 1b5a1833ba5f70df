"""The issue tracker through HTTP: auth, roles, validation, conflicts, error shape."""

import httpx
import pytest

from hypercare.auth.rules import Role
from tests.conftest import auth


async def _create(client: httpx.AsyncClient, token: str, **body: object) -> dict[str, object]:
    payload = {"title": "Payment status delayed", **body}
    r = await client.post("/api/v1/issues", json=payload, headers=auth(token))
    assert r.status_code == 201, r.text
    data: dict[str, object] = r.json()
    return data


async def test_full_lifecycle_through_the_api(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    issue = await _create(client, tokens[Role.support], priority="P2", component="payments")
    iid = issue["id"]
    resp = tokens[Role.responder]
    r = await client.patch(f"/api/v1/issues/{iid}", json={"assignee": "dana"}, headers=auth(resp))
    assert r.json()["assignee"] == "dana"
    for to in ("triaged", "investigating", "mitigated", "resolved", "verified"):
        r = await client.post(
            f"/api/v1/issues/{iid}/transitions", json={"to": to}, headers=auth(resp)
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == to
    r = await client.post(
        f"/api/v1/issues/{iid}/comments",
        json={"text": "confirmed by user"},
        headers=auth(tokens[Role.support]),
    )
    assert r.status_code == 201
    r = await client.get(f"/api/v1/issues/{iid}/timeline", headers=auth(tokens[Role.viewer]))
    kinds = [e["kind"] for e in r.json()]
    assert kinds.count("status") == 5 and kinds[-1] == "comment" and kinds[0] == "created"
    final = (await client.get(f"/api/v1/issues/{iid}", headers=auth(tokens[Role.viewer]))).json()
    assert final["verified_at"] and final["acknowledged_at"] and final["mttr_seconds"] is not None


async def test_missing_and_invalid_tokens_are_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/issues")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    r = await client.get("/api/v1/issues", headers=auth("hc_not-a-real-token"))
    assert r.status_code == 401
    r = await client.get("/api/v1/issues", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "allowed"),
    [
        (Role.viewer, "GET", "/api/v1/issues", None, True),
        (Role.viewer, "POST", "/api/v1/issues", {"title": "x"}, False),
        (Role.support, "POST", "/api/v1/issues", {"title": "x"}, True),
        (Role.support, "PATCH", "/api/v1/issues/1", {"priority": "P1"}, False),
        (Role.support, "POST", "/api/v1/issues/1/transitions", {"to": "triaged"}, False),
        (Role.responder, "POST", "/api/v1/issues/1/transitions", {"to": "triaged"}, True),
        (Role.viewer, "POST", "/api/v1/issues/1/comments", {"text": "hi"}, False),
        (Role.responder, "POST", "/api/v1/tokens", {"name": "n", "role": "viewer"}, False),
        (Role.admin, "POST", "/api/v1/tokens", {"name": "n", "role": "viewer"}, True),
    ],
)
async def test_roles(
    client: httpx.AsyncClient,
    tokens: dict[Role, str],
    role: Role,
    method: str,
    path: str,
    body: object,
    allowed: bool,
) -> None:
    await _create(client, tokens[Role.admin])
    r = await client.request(method, path, json=body, headers=auth(tokens[role]))
    if allowed:
        assert r.status_code < 300, r.text
    else:
        assert r.status_code == 403
        assert r.json()["error"]["details"]["held"] == role.value


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "x" * 301},
        {"title": "ok", "unknown": 1},
        {"title": "ok", "labels": "not-a-list"},
    ],
)
async def test_invalid_bodies_are_422_with_field_details(
    client: httpx.AsyncClient, tokens: dict[Role, str], body: object
) -> None:
    r = await client.post("/api/v1/issues", json=body, headers=auth(tokens[Role.support]))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_input" and err["details"] and err["message"]


async def test_unknown_priority_is_422_naming_the_valid_levels(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    r = await client.post(
        "/api/v1/issues", json={"title": "x", "priority": "P9"}, headers=auth(tokens[Role.admin])
    )
    assert r.status_code == 422
    assert "P1, P2, P3, P4" in r.json()["error"]["message"]


async def test_invalid_transition_is_409_listing_allowed(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    issue = await _create(client, tokens[Role.admin])
    r = await client.post(
        f"/api/v1/issues/{issue['id']}/transitions",
        json={"to": "verified"},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 409
    assert r.json()["error"]["details"]["allowed"] == ["triaged", "investigating", "closed"]


async def test_close_needs_reason_and_records_it(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    issue = await _create(client, tokens[Role.admin])
    url = f"/api/v1/issues/{issue['id']}/transitions"
    r = await client.post(url, json={"to": "closed"}, headers=auth(tokens[Role.responder]))
    assert r.status_code == 422
    r = await client.post(
        url,
        json={"to": "closed", "reason": "duplicate of #1"},
        headers=auth(tokens[Role.responder]),
    )
    assert r.status_code == 200 and r.json()["close_reason"] == "duplicate of #1"


async def test_not_found_and_bad_filters(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    v = auth(tokens[Role.viewer])
    r = await client.get("/api/v1/issues/4242", headers=v)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.get("/api/v1/issues?status=sleeping", headers=v)
    assert r.status_code == 422 and "valid" in r.json()["error"]["message"]
    r = await client.get("/api/v1/issues?limit=0", headers=v)
    assert r.status_code == 422
    r = await client.get("/api/v1/nope", headers=v)
    assert r.status_code == 404 and "error" in r.json()


async def test_filters_and_open_shortcut(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    a = await _create(client, tokens[Role.admin], priority="P1", assignee="ann")
    b = await _create(client, tokens[Role.admin], priority="P3", title="Search slow")
    await client.post(
        f"/api/v1/issues/{b['id']}/transitions",
        json={"to": "closed", "reason": "won't fix"},
        headers=auth(tokens[Role.admin]),
    )
    v = auth(tokens[Role.viewer])
    r = await client.get("/api/v1/issues?status=open", headers=v)
    assert [i["id"] for i in r.json()["items"]] == [a["id"]]
    r = await client.get("/api/v1/issues?assignee=ann&priority=P1,P2", headers=v)
    assert r.json()["total"] == 1
    r = await client.get("/api/v1/issues?q=search", headers=v)
    assert [i["id"] for i in r.json()["items"]] == [b["id"]]
    r = await client.get("/api/v1/issues?sla_state=ok", headers=v)
    assert r.json()["total"] == 2


async def test_matrix_endpoint(client: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
    r = await client.get("/api/v1/matrix", headers=auth(tokens[Role.viewer]))
    levels = r.json()["levels"]
    assert [(lv["level"], lv["target"]) for lv in levels] == [
        ("P1", "1h"),
        ("P2", "4h"),
        ("P3", "1d"),
        ("P4", "post-hypercare"),
    ]


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/issues/{issue_id}/transitions" in spec["paths"]


async def test_oversized_body_is_413(client: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
    r = await client.post(
        "/api/v1/issues",
        content=b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={**auth(tokens[Role.admin]), "content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


async def test_tokens_api_creates_lists_and_revokes(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    a = auth(tokens[Role.admin])
    r = await client.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"}, headers=a)
    created = r.json()
    assert created["token"].startswith("hc_")
    listed = (await client.get("/api/v1/tokens", headers=a)).json()
    assert all("token" not in t and "hash" not in str(t) for t in listed)
    assert (await client.get("/api/v1/whoami", headers=auth(created["token"]))).status_code == 200
    await client.delete(f"/api/v1/tokens/{created['id']}", headers=a)
    assert (await client.get("/api/v1/whoami", headers=auth(created["token"]))).status_code == 401

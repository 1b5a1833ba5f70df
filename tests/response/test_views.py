"""Response through HTTP: the notification log, replay, acknowledgement, the signed link."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.response import jobs, rules, service
from hypercare.response.channels import MemoryNotifier, Outcome
from tests.conftest import auth
from tests.response.support import turn

CONFIG = """
response:
  channels:
    - name: ops-hook
      type: webhook
      url: http://127.0.0.1:9/hook
  rules:
    - match: {priority: [P1]}
      notify: [ops-hook]
  dispatch: {backoff: 0s, max_attempts: 1}
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def _p1(client: httpx.AsyncClient, tokens: dict[Role, str], title: str = "Pay down") -> int:
    r = await client.post(
        "/api/v1/issues",
        json={"title": title, "priority": "P1"},
        headers=auth(tokens[Role.support]),
    )
    assert r.status_code == 201, r.text
    issue_id: int = r.json()["id"]
    return issue_id


async def test_notification_log_and_replay(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    memory.fail = lambda _o: Outcome(False, 500, "HTTP 500")
    issue_id = await _p1(client, tokens)
    await turn(state)
    r = await client.get(
        f"/api/v1/issues/{issue_id}/notifications", headers=auth(tokens[Role.viewer])
    )
    assert r.status_code == 200
    (entry,) = r.json()
    assert entry["channel"] == "ops-hook" and entry["state"] == "dead"
    assert entry["attempts"] == 1 and entry["receiver_status"] == 500
    assert entry["recipient"] == "http://127.0.0.1:9/hook"
    assert entry["created_at"] and entry["last_attempt_at"]

    url = f"/api/v1/notifications/{entry['id']}/replay"
    assert (await client.post(url, headers=auth(tokens[Role.viewer]))).status_code == 403
    r = await client.post(url, headers=auth(tokens[Role.responder]))
    assert r.status_code == 200 and r.json()["state"] == "pending"
    again = await client.post(url, headers=auth(tokens[Role.responder]))
    assert again.status_code == 422 and again.json()["error"]["message"]
    memory.fail = lambda _o: None
    await turn(state)
    r = await client.get(
        f"/api/v1/issues/{issue_id}/notifications", headers=auth(tokens[Role.viewer])
    )
    assert r.json()[0]["state"] == "sent"
    missing = await client.post(
        "/api/v1/notifications/999999/replay", headers=auth(tokens[Role.responder])
    )
    assert missing.status_code == 404
    nobody = await client.get(
        "/api/v1/issues/999999/notifications", headers=auth(tokens[Role.viewer])
    )
    assert nobody.status_code == 404


async def test_acknowledge_through_the_api(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    issue_id = await _p1(client, tokens)
    url = f"/api/v1/issues/{issue_id}/acknowledge"
    assert (await client.post(url, headers=auth(tokens[Role.support]))).status_code == 403
    r = await client.post(url, json={"note": "on it"}, headers=auth(tokens[Role.responder]))
    assert r.status_code == 200, r.text
    acked = r.json()["acknowledged_at"]
    assert acked and r.json()["mtta_seconds"] is not None
    # a second acknowledgement changes nothing
    r = await client.post(url, headers=auth(tokens[Role.admin]))
    assert r.json()["acknowledged_at"] == acked
    timeline = await client.get(
        f"/api/v1/issues/{issue_id}/timeline", headers=auth(tokens[Role.viewer])
    )
    acks = [e for e in timeline.json() if e["kind"] == "acknowledged"]
    assert len(acks) == 1 and "on it" in acks[0]["text"]
    bad = await client.post(url, json={"note": 5, "x": 1}, headers=auth(tokens[Role.responder]))
    assert bad.status_code == 422
    missing = await client.post(
        "/api/v1/issues/424242/acknowledge", headers=auth(tokens[Role.responder])
    )
    assert missing.status_code == 404
    await turn(state)
    assert [o.message["event"] for o in memory.sent] == ["created", "acknowledged"]


async def test_the_signed_link_acknowledges_once_and_only_by_post(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    issue_id = await _p1(client, tokens, title="Checkout <b>broken</b>")
    await turn(state)
    link = urlsplit(memory.sent[0].message["ack_url"])
    assert link.scheme == "http" and link.path.startswith("/ack/")

    page = await client.get(link.path)
    assert page.status_code == 200
    assert "<form method='post'" in page.text and "Checkout &lt;b&gt;broken" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "<script" not in page.text
    # opening the link (as a mail scanner would) acknowledges nothing
    issue = await client.get(f"/api/v1/issues/{issue_id}", headers=auth(tokens[Role.viewer]))
    assert issue.json()["acknowledged_at"] is None

    cross = await client.post(link.path, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    done = await client.post(link.path, headers={"sec-fetch-site": "same-origin"})
    assert done.status_code == 200 and "acknowledged" in done.text
    issue = await client.get(f"/api/v1/issues/{issue_id}", headers=auth(tokens[Role.viewer]))
    assert issue.json()["acknowledged_at"] is not None
    used = await client.post(link.path)
    assert used.status_code == 409 and "used already" in used.text


async def test_bad_links_get_a_clear_page(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    issue_id = await _p1(client, tokens)
    async with state.sessions() as s, s.begin():
        key = await service.signing_key(session=s, config=state.config.response)
    expired = rules.sign_ack(key, rules.AckClaim(issue_id, int(time.time()) - 1, "n1"))
    tampered = rules.sign_ack(key, rules.AckClaim(issue_id, int(time.time()) + 60, "n2"))
    tampered = tampered.replace(f"{issue_id}.", f"{issue_id + 1}.", 1)
    gone = rules.sign_ack(key, rules.AckClaim(999999, int(time.time()) + 60, "n3"))
    cases = [
        (expired, 400, "expired"),
        (tampered, 400, "changed"),
        ("not-a-token", 400, "not valid"),
        ("1.2.3.4." + "x" * 400, 400, "not valid"),
        (gone, 404, "no longer exists"),
    ]
    for token, status, text in cases:
        for method in ("GET", "POST"):
            r = await client.request(method, f"/ack/{token}")
            assert r.status_code == status, (token, method, r.text)
            assert text in r.text and r.headers["content-type"].startswith("text/html")


async def test_a_generated_webhook_secret_is_shown_once(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    admin = auth(tokens[Role.admin])
    assert (
        await client.get("/api/v1/response/channels", headers=auth(tokens[Role.responder]))
    ).status_code == 403
    first = (await client.get("/api/v1/response/channels", headers=admin)).json()
    assert first[0]["name"] == "ops-hook" and first[0]["signed"] is True
    assert first[0]["secret"] == jobs.runtime(state).secrets["ops-hook"]
    second = (await client.get("/api/v1/response/channels", headers=admin)).json()
    assert second[0]["secret"] is None and second[0]["secret_revealed_at"]


async def test_the_log_is_bounded(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    issue_id = await _p1(client, tokens)
    await client.post(
        f"/api/v1/issues/{issue_id}/acknowledge", headers=auth(tokens[Role.responder])
    )
    await turn(state)
    url = f"/api/v1/issues/{issue_id}/notifications"
    both = (await client.get(url, headers=auth(tokens[Role.viewer]))).json()
    assert [d["event"] for d in both] == ["created", "acknowledged"]
    newest = (await client.get(url + "?limit=1", headers=auth(tokens[Role.viewer]))).json()
    assert [d["event"] for d in newest] == ["acknowledged"]
    for bad in ("0", "1001", "x"):
        r = await client.get(f"{url}?limit={bad}", headers=auth(tokens[Role.viewer]))
        assert r.status_code == 422


LINKED = (
    CONFIG
    + """  people:
    - {name: ann, full_name: Ann Lee, token: responder-user}
    - {name: bob, token: admin-user}
"""
)


@pytest.mark.parametrize("config", [parse_config(LINKED, "test.yaml")])
async def test_a_token_linked_to_a_person_acknowledges_as_that_person(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    issue_id = await _p1(client, tokens)
    r = await client.post(
        f"/api/v1/issues/{issue_id}/acknowledge", headers=auth(tokens[Role.responder])
    )
    assert r.status_code == 200, r.text
    timeline = await client.get(
        f"/api/v1/issues/{issue_id}/timeline", headers=auth(tokens[Role.viewer])
    )
    (ack,) = [e for e in timeline.json() if e["kind"] == "acknowledged"]
    assert ack["actor"] == "ann"
    assert ack["text"] == "Acknowledged by Ann Lee (ann) (api)"
    people = await client.get("/api/v1/people", headers=auth(tokens[Role.viewer]))
    assert [(p["name"], p["token"]) for p in people.json()] == [
        ("ann", "responder-user"),
        ("bob", "admin-user"),
    ]


def test_one_token_stands_for_one_person() -> None:
    from hypercare.errors import ConfigError

    text = LINKED.replace("token: admin-user", "token: responder-user")
    with pytest.raises(ConfigError, match=r"test.yaml:\d+: response.people\[1\].token"):
        parse_config(text, "test.yaml")

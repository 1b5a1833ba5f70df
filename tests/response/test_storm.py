"""Storms: more than N new issues within M seconds make one message per channel."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.response import service
from hypercare.response.channels import MemoryNotifier
from hypercare.response.rules import storm_message
from tests.conftest import auth
from tests.response.support import turn

CONFIG = """
response:
  channels:
    - {name: ops-hook, type: webhook, url: 'http://127.0.0.1:9/hook'}
  rules:
    - match: {priority: [P1, P2, P3]}
      notify: [ops-hook]
  storm: {issues: 2, within: 60s, gather: 0s}
  dispatch: {backoff: 0s, max_attempts: 1}
"""


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(CONFIG, "test.yaml")


async def _open(client: httpx.AsyncClient, tokens: dict[Role, str], n: int, pri: str) -> list[int]:
    ids = []
    for i in range(n):
        r = await client.post(
            "/api/v1/issues",
            json={"title": f"Checkout fails {i}", "priority": pri},
            headers=auth(tokens[Role.support]),
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def test_storm_message_keeps_what_channels_read() -> None:
    members = [
        {"issue_id": 3, "priority": "P3", "title": "a", "issue_url": "http://h/issues/3"},
        {"issue_id": 4, "priority": "P1", "title": "b", "issue_url": "http://h/issues/4"},
    ]
    m = storm_message(members, within=timedelta(seconds=60))
    assert m["issue_id"] == 3 and m["priority"] == "P1" and m["event"] == "storm"
    assert m["title"].startswith("Storm: 2 new issues")
    assert m["text"].splitlines() == [
        "#3 [P3] a — http://h/issues/3",
        "#4 [P1] b — http://h/issues/4",
    ]


async def test_a_storm_sends_one_message_instead_of_many(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    first = await _open(client, tokens, 5, "P2")
    await turn(state)
    assert len(memory.sent) == 1
    message = memory.sent[0].message
    assert message["event"] == "storm" and message["issues"] == first
    assert message["title"].startswith("Storm: 5 new issues")
    # the storm goes on: the next ones make one more message, not one each
    more = await _open(client, tokens, 2, "P3")
    await turn(state)
    assert len(memory.sent) == 2 and memory.sent[1].message["issues"] == more
    r = await client.get(
        f"/api/v1/issues/{first[0]}/notifications", headers=auth(tokens[Role.viewer])
    )
    assert [(d["event"], d["state"]) for d in r.json()] == [("storm", "sent")]


async def test_below_the_threshold_each_issue_has_its_message(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    ids = await _open(client, tokens, 2, "P2")
    await turn(state)
    assert sorted(o.message["issue_id"] for o in memory.sent) == ids
    assert all(o.message["event"] == "created" for o in memory.sent)


async def test_a_pending_storm_message_gathers_the_next_issues(
    client: httpx.AsyncClient,
    tokens: dict[Role, str],
    state: AppState,
    memory: MemoryNotifier,
) -> None:
    state.config = state.config.model_copy(
        update={
            "response": state.config.response.model_copy(
                update={
                    "storm": state.config.response.storm.model_copy(  # type: ignore[union-attr]
                        update={"gather": timedelta(hours=1)}
                    )
                }
            )
        }
    )
    first = await _open(client, tokens, 3, "P2")
    await turn(state)
    more = await _open(client, tokens, 2, "P2")
    await turn(state)
    assert memory.sent == []  # still gathering
    r = await client.get(
        f"/api/v1/issues/{first[0]}/notifications", headers=auth(tokens[Role.viewer])
    )
    (storm,) = r.json()
    assert storm["event"] == "storm" and storm["state"] == "pending"
    async with state.sessions() as session:
        (row,) = await service.list_deliveries(session=session, issue_id=first[0])
    assert [m["issue_id"] for m in row.message["members"]] == first + more
    assert row.message["title"].startswith("Storm: 5 new issues")
    for issue_id in more:
        r = await client.get(
            f"/api/v1/issues/{issue_id}/notifications", headers=auth(tokens[Role.viewer])
        )
        assert r.json() == []


PAGING = """
response:
  channels:
    - {name: ops-hook, type: webhook, url: 'http://127.0.0.1:9/hook'}
    - {name: pager-hook, type: webhook, url: 'http://127.0.0.1:9/pager'}
  rules:
    - match: {priority: [P2]}
      notify: [ops-hook]
  policies:
    - name: page-all
      levels: [P2]
      steps:
        - notify: [pager-hook]
  storm: {issues: 2, within: 60s, gather: 0s}
  dispatch: {backoff: 0s, max_attempts: 1}
"""


@pytest.mark.parametrize("config", [parse_config(PAGING, "test.yaml")])
async def test_escalation_pages_during_a_storm_are_one_grouped_page(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, memory: MemoryNotifier
) -> None:
    ids = await _open(client, tokens, 4, "P2")
    await turn(state)  # the outbox starts the policies
    await turn(state)  # their first step is due: one page each, folded
    pages = [o.message for o in memory.sent if o.channel.name == "pager-hook"]
    assert len(pages) == 1
    assert pages[0]["event"] == "storm_page" and pages[0]["issues"] == ids
    assert pages[0]["title"].startswith("Storm: 4 issues paging")
    assert [o.message["event"] for o in memory.sent if o.channel.name == "ops-hook"] == ["storm"]
    # each issue still shows its own escalation step on the timeline
    for issue_id in ids:
        r = await client.get(f"/api/v1/issues/{issue_id}", headers=auth(tokens[Role.viewer]))
        assert r.status_code == 200

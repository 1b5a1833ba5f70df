"""URLs that arrive through the API: resolved, then refused when private unless allowed."""

from __future__ import annotations

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.response import jobs
from hypercare.response.channels import (
    HttpNotifier,
    Outbound,
    Outcome,
    check_public_url,
    new_client,
    pin_public,
    system_resolver,
)
from hypercare.response.config import ChannelConfig
from tests.conftest import auth
from tests.response.conftest import Receiver


async def test_the_system_resolver_on_literals_and_localhost() -> None:
    assert await system_resolver("127.0.0.1") == ["127.0.0.1"]
    assert await system_resolver("::1") == ["::1"]
    assert "127.0.0.1" in await system_resolver("localhost") or "::1" in await system_resolver(
        "localhost"
    )
    assert await system_resolver("bad host name with spaces") == []


async def test_check_public_url_uses_the_given_resolver() -> None:
    names = {"hooks.example.com": ["93.184.216.34"], "sneaky.example.com": ["10.0.0.7"]}

    async def fake(host: str) -> list[str]:
        return names.get(host, [])

    assert await check_public_url("https://hooks.example.com/x", [], fake) is None
    refusal = await check_public_url("https://sneaky.example.com/x", [], fake)
    assert refusal and "10.0.0.7" in refusal
    assert await check_public_url("https://sneaky.example.com/x", ["10.0.0.0/8"], fake) is None
    assert await check_public_url("http://[::1]:80/", [], system_resolver)


@pytest.fixture
def config(receiver: Receiver) -> HypercareConfig:
    return parse_config(
        f"""
response:
  allow_private: ['127.0.0.2']
  channels:
    - {{name: ops-hook, type: webhook, url: '{receiver.url}'}}
""",
        "t.yaml",
    )


async def test_test_messages_to_configured_channels_and_guarded_urls(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState, receiver: Receiver
) -> None:
    admin = auth(tokens[Role.admin])
    await jobs.start(state)
    try:
        # the operator's own channel is used as written, loopback included
        r = await client.post("/api/v1/response/test", json={"channel": "ops-hook"}, headers=admin)
        assert r.status_code == 200 and r.json() == {"ok": True, "status": 204, "error": None}
        headers, body = receiver.received[0]
        assert body["event"] == "test" and headers["X-Hypercare-Signature"].startswith("t=")
        # a URL given through the API is refused when it is private or loopback
        for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
            r = await client.post("/api/v1/response/test", json={"url": url}, headers=admin)
            assert r.status_code == 422, r.text
            assert "private or local" in r.json()["error"]["message"]
        assert len(receiver.received) == 1
        # ... unless allow_private names it (127.0.0.2 is loopback too, and nothing listens)
        other = receiver.url.replace("127.0.0.1", "127.0.0.2")
        r = await client.post("/api/v1/response/test", json={"url": other}, headers=admin)
        assert r.status_code == 200 and r.json()["ok"] is False
        for bad in (
            {},
            {"channel": "ops-hook", "url": other},
            {"channel": "nope"},
            {"url": "ftp://x"},
        ):
            r = await client.post("/api/v1/response/test", json=bad, headers=admin)
            assert r.status_code in (404, 422), (bad, r.text)
        r = await client.post(
            "/api/v1/response/test",
            json={"channel": "ops-hook"},
            headers=auth(tokens[Role.responder]),
        )
        assert r.status_code == 403
    finally:
        await jobs.close(jobs.runtime(state))


async def test_pin_public_refuses_for_good_or_pins_the_checked_addresses(
    receiver: Receiver,
) -> None:
    """The guard at the send: a refusal is final (not retried); an accepted URL is sent to
    exactly the addresses checked, whatever a later lookup would say."""
    names = {"hooks.example.test": ["127.0.0.1"]}

    async def resolve(host: str) -> list[str]:
        return names.get(host, [])

    port = receiver.url.rsplit(":", 1)[1].split("/", 1)[0]
    channel = ChannelConfig(
        name="subscriber", type="webhook", url=f"http://hooks.example.test:{port}/hook"
    )
    message = {"kind": "subscription", "payload": {"hello": "world"}}
    outbound = Outbound(7, channel, message, "key-7")
    refused = await pin_public(outbound, [], resolve)
    assert isinstance(refused, Outcome) and not refused.ok and refused.retry is False
    assert refused.error == (
        "refused at delivery: hooks.example.test resolves to 127.0.0.1, a private or local "
        "address; name it in response.allow_private to allow it"
    )
    names["nowhere.example.test"] = []
    gone = await pin_public(
        Outbound(8, channel.model_copy(update={"url": "http://nowhere.example.test/"}), {}, "k"),
        [],
        resolve,
    )
    assert isinstance(gone, Outcome) and gone.error and "does not resolve" in gone.error
    pinned = await pin_public(outbound, ["127.0.0.1"], resolve)
    assert isinstance(pinned, Outbound) and pinned.addresses == ("127.0.0.1",)
    async with new_client() as client:
        outcome = await HttpNotifier(client).send(pinned)
        assert outcome == Outcome(True, 204)  # a name no resolver knows: the pin was used
    ((headers, body),) = receiver.received
    assert headers["Host"] == f"hooks.example.test:{port}" and body == {"hello": "world"}

"""Status page subscribers: double opt-in through a real SMTP server (aiosmtpd on loopback),
signed confirm and unsubscribe links (tampered, expired), one-click unsubscribe, the URL
guard on webhooks, the rate limit and the admin API (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.comms import jobs as comms_jobs
from hypercare.comms import rules, service
from hypercare.config import HypercareConfig, parse_config
from hypercare.response import jobs
from hypercare.response import service as response_service
from hypercare.response.channels import EmailNotifier, HttpNotifier, MemoryNotifier, Notifiers
from hypercare.status import jobs as status_jobs
from hypercare.status.models import StatusIncident, StatusIncidentUpdate, StatusMaintenance
from hypercare.store.base import utcnow
from tests.comms.test_service import Inbox
from tests.conftest import auth
from tests.response.conftest import Receiver


@pytest.fixture
def config(smtp: tuple[Inbox, int]) -> HypercareConfig:
    return parse_config(
        f"""
response:
  base_url: https://status.example.com
  channels:
    - {{name: mail, type: email, smtp_host: 127.0.0.1, smtp_port: {smtp[1]}, smtp_tls: none,
       sender: status@example.com, to: [team@example.com]}}
status:
  components:
    - {{name: Payments, routes: [payment-status]}}
gateway:
  upstreams:
    pay: {{targets: ["127.0.0.1:9"]}}
  routes:
    - {{name: payment-status, match: {{path: /payments}}, upstream: pay}}
comms:
  subscribers: {{enabled: true, channel: mail, per_minute: 4}}
""",
        "test.yaml",
    )


async def test_double_opt_in_links_and_one_click_unsubscribe(
    state: AppState,
    client: httpx.AsyncClient,
    tokens: dict[Role, str],
    smtp: tuple[Inbox, int],
) -> None:
    box, _ = smtp
    page_rt = status_jobs.runtime(state)
    page_rt.wake.set()
    await status_jobs.turn(state, page_rt, time.time())
    status_page = await client.get("/status")
    assert status_page.status_code == 200
    assert '<a href="/status/subscribe">Subscribe to updates</a>' in status_page.text
    page = await client.get("/status/subscribe")
    assert (
        page.status_code == 200 and "form-action 'self'" in page.headers["content-security-policy"]
    )
    assert "value='Payments'" in page.text and "<script" not in page.text
    r = await client.post(
        "/status/subscribe", data={"email": "Ann@Example.com", "component": "Payments"}
    )
    assert r.status_code == 200 and "Check your inbox" in r.text

    again = await client.post(
        "/status/subscribe", data={"email": "ann@example.com", "component": "Payments"}
    )
    assert again.status_code == 200  # no second confirmation within RESEND_AFTER
    state.runtimes.discard(jobs.ResponseRuntime)
    rt = await jobs.start(state)
    await jobs.step(state, rt)
    await jobs.settle(state, rt)
    ((envelope, msg),) = box.messages
    assert envelope.rcpt_tos == ["ann@example.com"]
    body = msg.get_payload(decode=True).decode()
    link = re.search(r"https://status\.example\.com(/status/confirm\?token=\S+)", body)
    assert link is not None
    path = link.group(1)

    admin = auth(tokens[Role.admin])
    listed = (await client.get("/api/v1/subscribers", headers=admin)).json()
    assert listed["total"] == 1 and listed["items"][0]["confirmed_at"] is None
    assert listed["items"][0]["components"] == ["Payments"]
    assert (
        await client.get("/api/v1/subscribers", headers=auth(tokens[Role.viewer]))
    ).status_code == 403

    bad = await client.get(path[:-3] + "AAA")
    assert bad.status_code == 400 and "changed" in bad.text
    ok = await client.get(path)
    assert ok.status_code == 200 and "Subscription confirmed" in ok.text
    listed = (await client.get("/api/v1/subscribers", headers=admin)).json()
    assert listed["items"][0]["confirmed_at"] is not None

    unsub = re.search(r"/status/unsubscribe\?token=[^']+", ok.text)
    assert unsub is not None
    form = await client.get(unsub.group(0))
    assert form.status_code == 200 and "method='post'" in form.text
    done = await client.post(unsub.group(0), data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "Unsubscribed" in done.text
    assert (await client.get("/api/v1/subscribers", headers=admin)).json()["total"] == 0


async def test_expired_links_bad_input_webhook_guard_and_rate_limit(
    state: AppState, client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    async with state.sessions() as s, s.begin():
        key = await response_service.signing_key(session=s, config=state.config.response)
    expired = rules.sign_link(key, rules.CONFIRM, 1, 1000)
    r = await client.get(f"/status/confirm?token={expired}")
    assert r.status_code == 400 and "expired" in r.text
    r = await client.get("/status/confirm?token=garbage")
    assert r.status_code == 400 and "incomplete" in r.text
    # a confirm link is no unsubscribe link
    r = await client.post(f"/status/unsubscribe?token={rules.sign_link(key, rules.CONFIRM, 1, 0)}")
    assert r.status_code == 400

    r = await client.post("/status/subscribe", data={"url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 422 and "webhook URL refused" in r.text
    r = await client.post("/status/subscribe", data={"email": "x@example.com", "component": "Nope"})
    assert r.status_code == 422 and "unknown component" in r.text
    r = await client.post("/status/subscribe", data={"email": "not-an-address"})
    assert r.status_code == 422
    r = await client.post("/status/subscribe", data={})
    assert r.status_code == 429 or r.status_code == 422
    r = await client.post("/status/subscribe", data={})
    assert r.status_code == 429 and "retry-after" in r.headers

    admin = auth(tokens[Role.admin])
    assert (await client.delete("/api/v1/subscribers/999", headers=admin)).status_code == 404


async def _publish(s: AsyncSession, name: str, now: datetime) -> None:
    """A published incident of Payments with its first update."""
    incident = StatusIncident(
        name=name, status="identified", impact="major", components=["Payments"],
        published=True, created_at=now, updated_at=now,
    )  # fmt: skip
    s.add(incident)
    await s.flush()
    s.add(
        StatusIncidentUpdate(
            incident_id=incident.id, status="identified", body="A provider fails.",
            affected_components=[], created_at=now,
        )
    )  # fmt: skip


async def _update(state: AppState, name: str) -> None:
    async with state.sessions() as s, s.begin():
        await _publish(s, name, utcnow())


async def test_subscribers_told_of_incident_updates_and_maintenance(
    state: AppState, smtp: tuple[Inbox, int]
) -> None:
    box, _ = smtp
    now = utcnow()
    async with state.sessions() as s, s.begin():
        ann, _ = await service.subscribe(
            session=s, kind="email", target="ann@example.com", components=[], now=now
        )
        await service.confirm(session=s, subscriber_id=ann.id, now=now - timedelta(hours=1))
        await service.subscribe(
            session=s, kind="webhook", target="https://hooks.example.com/x",
            components=["Payments"], now=now - timedelta(hours=1),
        )  # fmt: skip
        await service.subscribe(  # never confirmed: told nothing
            session=s, kind="email", target="bob@example.com", components=[], now=now
        )
        await service.subscribe(  # another component: told nothing
            session=s, kind="webhook", target="https://other.example.com/x",
            components=["Search"], now=now - timedelta(hours=1),
        )  # fmt: skip
        await _publish(s, "Payments failing", now)
        s.add(
            StatusMaintenance(
                name="Database upgrade", body="", components=["Payments"],
                scheduled_for=now - timedelta(minutes=5), scheduled_until=now + timedelta(hours=1),
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
    memory = MemoryNotifier()
    state.runtimes.discard(jobs.ResponseRuntime)
    jobs.runtime(state).notifiers = Notifiers({"webhook": memory, "email": EmailNotifier()})

    async def resolve(host: str) -> list[str]:  # the guard looks again at each send
        return {"hooks.example.com": ["93.184.216.34"]}.get(host, [])

    jobs.runtime(state).resolve = resolve
    rt = await jobs.start(state)
    assert await comms_jobs.subscriber_pass(state) == 4  # 2 notices x (ann, the webhook)
    assert await comms_jobs.subscriber_pass(state) == 0  # each once
    await jobs.step(state, rt)
    await jobs.settle(state, rt)
    subjects = sorted(m["Subject"] for _, m in box.messages)
    assert subjects == [
        "[Service status] Maintenance has started: Database upgrade",
        "[Service status] Payments failing: identified",
    ]
    msg = box.messages[0][1]
    assert msg["List-Unsubscribe"].startswith("<https://status.example.com/status/unsubscribe?")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    hooks = sorted(memory.sent, key=lambda o: o.channel.name)
    assert {o.message["url"] for o in hooks} == {"https://hooks.example.com/x"}
    assert {o.addresses for o in hooks} == {("93.184.216.34",)}  # pinned to what was checked
    async with httpx.AsyncClient() as c:
        bodies = [json.loads(HttpNotifier(c).request(o)[1]) for o in hooks]
    assert {b["incident"]["name"] for b in bodies} == {"Payments failing", "Database upgrade"}
    assert all("unsubscribe" in b["meta"] for b in bodies)


async def test_a_webhook_url_is_guarded_again_when_it_is_sent_to(
    state: AppState, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A name that resolved to a public address when it was subscribed and resolves to
    loopback at delivery is refused then: a dead delivery saying why, never retried. Sends
    go to the addresses checked (pinned), not to a second lookup."""
    names = {"hooks.example.test": ["93.184.216.34"]}

    async def resolve(host: str) -> list[str]:
        return names.get(host, [])

    port = receiver.url.rsplit(":", 1)[1].split("/", 1)[0]
    url = f"http://hooks.example.test:{port}/hook"
    state.runtimes.discard(jobs.ResponseRuntime)
    jobs.runtime(state).resolve = resolve
    rt = await jobs.start(state)
    try:
        r = await client.post("/status/subscribe", data={"url": url})
        assert r.status_code == 200 and "Subscribed" in r.text
        names["hooks.example.test"] = ["127.0.0.1"]  # DNS changed since
        await _update(state, "Payments failing")
        assert await comms_jobs.subscriber_pass(state) == 1
        for _ in range(3):  # later turns change nothing: the refusal is final
            await jobs.step(state, rt)
            await jobs.settle(state, rt)
        async with state.sessions() as s:
            (d,) = (await response_service.find_deliveries(session=s, no_issue=True))[0]
        assert (d.state, d.attempts, d.receiver_status) == ("dead", 1, None)
        assert d.error is not None and d.error.startswith("refused at delivery: ")
        assert "127.0.0.1, a private or local address" in d.error
        assert receiver.received == []

        # allowed by the operator: sent to the checked address, which the system resolver
        # does not know (a reserved .test name), with the URL's Host
        state.config.response.allow_private.append("127.0.0.1")
        await _update(state, "Payments slow")
        assert await comms_jobs.subscriber_pass(state) == 1
        await jobs.step(state, rt)
        await jobs.settle(state, rt)
        ((headers, body),) = receiver.received
        assert headers["Host"] == f"hooks.example.test:{port}"
        assert body["incident"]["name"] == "Payments slow"
    finally:
        await jobs.close(rt)

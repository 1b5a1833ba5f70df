"""The stakeholder digest goes through the response outbox: its deliveries are written with
the "last sent" setting in one transaction and sent by the dispatcher (retries, dead
letters), to a real HTTP receiver and a real SMTP server on loopback (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.api.app import build_state
from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.comms import jobs as comms_jobs
from hypercare.comms import service
from hypercare.config import HypercareConfig, parse_config
from hypercare.response import jobs
from hypercare.response import service as response_service
from hypercare.response.models import Delivery
from tests.comms.test_service import Inbox
from tests.conftest import auth
from tests.response.conftest import Receiver

# a morning in the past: the deliveries a digest makes at 09:01 are due at once
START = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


def _config(receiver: Receiver, smtp_port: int) -> HypercareConfig:
    return parse_config(
        f"""
response:
  channels:
    - {{name: ops-hook, type: webhook, url: '{receiver.url}'}}
    - {{name: mail, type: email, smtp_host: 127.0.0.1, smtp_port: {smtp_port}, smtp_tls: none,
       sender: hypercare@example.com, to: [leads@example.com]}}
  dispatch: {{backoff: 0s, max_attempts: 4}}
comms:
  digest:
    title: Launch digest
    send_at: ["09:00"]
    channels: [ops-hook, mail]
""",
        "test.yaml",
    )


@pytest.fixture
def config(receiver: Receiver, smtp: tuple[Inbox, int]) -> HypercareConfig:
    return _config(receiver, smtp[1])


async def _due(state: AppState) -> str | None:
    """The first look (nothing due), then past 09:00: the digest is decided."""
    assert await comms_jobs.digest_turn(state, START) is None
    return await comms_jobs.digest_turn(state, START + timedelta(minutes=31))


async def _digests(state: AppState) -> dict[str, Delivery]:
    async with state.sessions() as s:
        rows, _ = await response_service.find_deliveries(
            session=s, event=service.DIGEST_EVENT, no_issue=True
        )
    return {d.channel.partition(">")[0]: d for d in rows}


async def _turns(state: AppState, rt: jobs.ResponseRuntime, most: int) -> None:
    """Loop turns (each with its sends settled) until no digest delivery is open."""
    for _ in range(most):
        await jobs.step(state, rt)
        await jobs.settle(state, rt)
        if all(d.state in ("sent", "dead") for d in (await _digests(state)).values()):
            return
    raise AssertionError(f"digest deliveries still open after {most} turns")


async def test_a_flaky_receiver_gets_the_digest_once_after_retries(
    state: AppState, receiver: Receiver, smtp: tuple[Inbox, int]
) -> None:
    box, _ = smtp
    receiver.answers = [503, 503]  # fails twice, then answers 204
    rt = await jobs.start(state)
    try:
        assert await _due(state) == "scheduled 09:00"
        await _turns(state, rt, most=6)
    finally:
        await jobs.close(rt)
    found = await _digests(state)
    hook, mail = found["ops-hook"], found["mail"]
    assert (hook.state, hook.attempts, hook.receiver_status) == ("sent", 3, 204)
    assert (mail.state, mail.attempts) == ("sent", 1)
    # three requests, one message: the same idempotency key each time
    assert len(receiver.received) == 3
    keys = {headers["Idempotency-Key"] for headers, _ in receiver.received}
    assert keys == {hook.idempotency_key}
    _, body = receiver.received[-1]
    assert body["kind"] == "digest" and body["subject"] == "Launch digest (scheduled 09:00)"
    assert "open_issues" in body["digest"]
    ((envelope, message),) = box.messages
    assert envelope.rcpt_tos == ["leads@example.com"]
    assert message["Subject"] == "Launch digest (scheduled 09:00)"
    parts = {p.get_content_type() for p in message.walk()}
    assert {"text/plain", "text/html"} <= parts
    async with state.sessions() as s:
        assert await service.digest_outcomes(session=s) == {
            "pending": 0,
            "sent": 2,
            "failed": 0,
            "dead": 0,
        }


async def test_a_receiver_that_always_fails_ends_as_a_dead_letter(
    state: AppState,
    receiver: Receiver,
    client: httpx.AsyncClient,
    tokens: dict[Role, str],
) -> None:
    receiver.status = 500
    rt = await jobs.start(state)
    try:
        await _due(state)
        await _turns(state, rt, most=8)
    finally:
        await jobs.close(rt)
    hook = (await _digests(state))["ops-hook"]
    assert (hook.state, hook.attempts, hook.error) == ("dead", 4, "HTTP 500")
    assert len(receiver.received) == 4
    # listed where deliveries of no issue are shown, and replayable from there
    admin = auth(tokens[Role.admin])
    r = await client.get(
        "/api/v1/notifications",
        params={"event": "digest", "state": "dead", "no_issue": "true"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 1 and page["items"][0]["id"] == hook.id
    assert page["items"][0]["error"] == "HTTP 500" and page["items"][0]["issue_id"] is None
    r = await client.get("/api/v1/notifications", params={"state": "nope"}, headers=admin)
    assert r.status_code == 422
    viewer = auth(tokens[Role.viewer])
    assert (await client.get("/api/v1/notifications", headers=viewer)).status_code == 403
    async with state.sessions() as s:
        counts = await service.digest_outcomes(session=s)
    assert (counts["sent"], counts["dead"]) == (1, 1)  # the email went, the webhook died


async def test_a_crash_between_decide_and_send_loses_nothing(
    engine: AsyncEngine, receiver: Receiver, smtp: tuple[Inbox, int]
) -> None:
    box, port = smtp
    config = _config(receiver, port)
    # the console decides the digest and stops before its response loop sent anything
    first = build_state(config, engine)
    assert await _due(first) == "scheduled 09:00"
    made = await _digests(first)
    assert sorted(made) == ["mail", "ops-hook"]
    assert {d.state for d in made.values()} == {"pending"}
    # after the restart the outbox sends what was committed, and the digest is not redone
    second = build_state(config, engine)
    assert await comms_jobs.digest_turn(second, START + timedelta(minutes=40)) is None
    rt = await jobs.start(second)
    try:
        await _turns(second, rt, most=3)
    finally:
        await jobs.close(rt)
    assert {d.state for d in (await _digests(second)).values()} == {"sent"}
    assert len(receiver.received) == 1 and len(box.messages) == 1

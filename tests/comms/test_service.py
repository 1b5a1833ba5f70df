"""The "fixed" message to reporters of an issue's linked feedback: made by the response
outbox once the resolution is committed, sent through a real SMTP server (aiosmtpd on
loopback), once per reporter (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from hypercare.api.app import build_state
from hypercare.api.state import AppState
from hypercare.comms import jobs as comms_jobs
from hypercare.comms.config import CommsConfig
from hypercare.config import HypercareConfig, parse_config
from hypercare.errors import ConfigError
from hypercare.feedback.models import Signal
from hypercare.response import jobs
from hypercare.response.models import Delivery
from hypercare.triage import service as triage
from hypercare.triage.models import IssueCreate, TimelineEntry
from hypercare.triage.rules import Status


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append((envelope, message_from_bytes(raw)))
        return "250 Message accepted for delivery"


@pytest.fixture
async def inbox() -> AsyncIterator[tuple[Inbox, int]]:
    box = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(box), "127.0.0.1", 0)
    try:
        yield box, server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def config(inbox: tuple[Inbox, int]) -> HypercareConfig:
    return parse_config(
        f"""
response:
  channels:
    - name: mail
      type: email
      smtp_host: 127.0.0.1
      smtp_port: {inbox[1]}
      smtp_tls: none
      sender: support@example.com
      to: [team@example.com]
  dispatch: {{backoff: 0s}}
comms:
  fixed:
    channel: mail
    subject: "Fixed: {{{{ title }}}}"
    body: "You said {{{{ report }}}} ({{{{ reported_at }}}}); {{{{ title }}}} is {{{{ status }}}}."
""",
        "test.yaml",
    )


async def _issue_with_reports(state: AppState, refs: list[str | None]) -> int:
    at = datetime.now(UTC) - timedelta(minutes=10)
    async with state.sessions() as s, s.begin():
        issue = await triage.create_issue(
            session=s,
            matrix=state.matrix,
            data=IssueCreate(title="Checkout fails", priority="P2"),
            actor="api",
        )
        for i, ref in enumerate(refs):
            s.add(
                Signal(
                    kind="user",
                    source="widget",
                    occurred_at=at + timedelta(seconds=i),
                    summary=f"cannot pay {i}",
                    user_ref=ref,
                    request_ids=[],
                    dedup_key=uuid.uuid4().hex,
                    issue_id=issue.id,
                    raw={},
                )
            )
        return issue.id


async def _move(state: AppState, issue_id: int, *to: Status) -> None:
    async with state.sessions() as s, s.begin():
        for status in to:
            await triage.transition(
                session=s,
                matrix=state.matrix,
                issue_id=issue_id,
                to=status,
                reason="fixed" if status == Status.reopened else None,
                actor="ann",
            )


async def test_reporters_with_an_address_are_told_once_through_smtp(
    state: AppState, inbox: tuple[Inbox, int]
) -> None:
    box, _ = inbox
    state.runtimes.discard(jobs.ResponseRuntime)
    rt = await jobs.start(state)
    comms_jobs.install(state)
    comms_jobs.install(state)  # once only
    refs = ["Ann@Example.com", "bob@example.org", "ann@example.com", "not an address", None]
    issue_id = await _issue_with_reports(state, refs)
    await _move(state, issue_id, Status.triaged, Status.investigating, Status.resolved)

    await jobs.step(state, rt)
    await jobs.settle(state, rt)
    assert sorted(e.rcpt_tos[0] for e, _ in box.messages) == ["ann@example.com", "bob@example.org"]
    msg = next(m for e, m in box.messages if e.rcpt_tos == ["ann@example.com"])
    assert msg["Subject"] == "Fixed: Checkout fails"
    body = msg.get_payload(decode=True).decode()
    assert "You said cannot pay 0" in body and "Checkout fails is resolved" in body
    assert "hc.example" not in body and "/ack" not in body  # nothing internal

    # verified, then reopened and resolved again: nobody is told twice
    await _move(state, issue_id, Status.verified, Status.reopened, Status.resolved)
    for _ in range(2):
        await jobs.step(state, rt)
        await jobs.settle(state, rt)
    async with state.sessions() as s:
        rows = list(await s.scalars(select(Delivery).where(Delivery.event == "fixed")))
        entries = list(
            await s.scalars(select(TimelineEntry).where(TimelineEntry.kind == "fixed_message"))
        )
    assert len(rows) == 2 and {r.state for r in rows} == {"sent"}
    assert [e.text for e in entries] == ['"Fixed" message sent to 2 reporters of linked feedback']
    assert len(box.messages) == 2


async def test_no_message_without_the_section(state: AppState) -> None:
    config = state.config.model_copy(update={"comms": CommsConfig()})
    state = build_state(config, state.engine)
    rt = await jobs.start(state)
    comms_jobs.install(state)
    issue_id = await _issue_with_reports(state, ["ann@example.com"])
    await _move(state, issue_id, Status.triaged, Status.investigating, Status.resolved)
    await jobs.step(state, rt)
    async with state.sessions() as s:
        assert list(await s.scalars(select(Delivery))) == []


def test_config_errors_name_the_place() -> None:
    with pytest.raises(ConfigError, match="not an email channel"):
        parse_config("comms:\n  fixed:\n    channel: nowhere\n", "c.yaml")
    with pytest.raises(ConfigError, match="unknown variable 'secret'"):
        parse_config("comms:\n  fixed:\n    channel: mail\n    body: '{{ secret }}'\n", "c.yaml")
    with pytest.raises(ConfigError, match="c.yaml:4"):
        parse_config("comms:\n  fixed:\n    channel: mail\n    subject: '{% if %}'\n", "c.yaml")

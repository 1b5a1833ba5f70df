"""Wire formats and the notifiers, against local fakes (httpx MockTransport, aiosmtpd)."""

from __future__ import annotations

import asyncio
import json
import ssl
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from hypercare.response import rules
from hypercare.response.channels import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    EmailNotifier,
    HttpNotifier,
    Outbound,
    recipient,
)
from hypercare.response.config import ChannelConfig

FIXTURES = Path("/work/shared/fixtures/outbound")

MESSAGE: dict[str, Any] = {
    "event": "created",
    "entry_id": 7,
    "issue_id": 42,
    "title": "Payments failing",
    "priority": "P1",
    "status": "new",
    "component": "payments",
    "route": "/api/pay",
    "labels": ["checkout"],
    "sla_state": "ok",
    "due_at": "2026-01-01T01:00:00+00:00",
    "acknowledged_at": None,
    "text": "Issue opened as P1 (Critical)",
    "evidence": {"error rate": "34%"},
    "at": "2026-01-01T00:00:00+00:00",
    "issue_url": "https://hc.example.com/issues/42",
    "ack_url": "https://hc.example.com/ack/tok",
}


def _fixture(name: str) -> dict[str, Any]:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


class Receiver:
    """A fake receiver: records requests, answers with the scripted statuses."""

    def __init__(self, *statuses: int, body: dict[str, Any] | None = None) -> None:
        self.statuses = list(statuses) or [200]
        self.body = body or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status, json=self.body)


def _notifier(receiver: Receiver, now: float = 1_700_000_000) -> HttpNotifier:
    client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
    return HttpNotifier(client, clock=lambda: now)


def _out(channel: ChannelConfig, message: dict[str, Any] | None = None, **kw: Any) -> Outbound:
    return Outbound(
        delivery_id=1,
        channel=channel,
        message=message or MESSAGE,
        idempotency_key="key-1",
        **kw,
    )


async def test_webhook_body_signature_and_idempotency_on_every_attempt() -> None:
    receiver = Receiver(503, 200)
    notifier = _notifier(receiver)
    hook = ChannelConfig(name="ops-hook", type="webhook", url="http://127.0.0.1:9/hook")
    secret = "whsec_test_secret_value"
    first = await notifier.send(_out(hook, secret=secret))
    second = await notifier.send(_out(hook, secret=secret))
    assert (first.ok, first.status, first.error) == (False, 503, "HTTP 503")
    assert (second.ok, second.status) == (True, 200)
    for request in receiver.requests:
        assert str(request.url) == "http://127.0.0.1:9/hook"
        assert request.headers[IDEMPOTENCY_HEADER] == "key-1"
        assert rules.verify_webhook_signature(
            secret, request.headers[SIGNATURE_HEADER], request.content, 1_700_000_000
        )
    body = json.loads(receiver.requests[0].content)
    assert body["issue"]["id"] == 42 and body["issue"]["priority"] == "P1"
    assert body["issue"]["title"] == "Payments failing"
    assert body["acknowledge_url"] == "https://hc.example.com/ack/tok"
    assert body["urls"]["issue"] == "https://hc.example.com/issues/42"


async def test_transport_errors_and_timeouts_are_failures_not_exceptions() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    hook = ChannelConfig(name="h", type="webhook", url="http://127.0.0.1:9/")
    for handler, text in ((broken, "ConnectError"), (slow, "timed out")):
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        outcome = await HttpNotifier(client).send(_out(hook))
        assert not outcome.ok and outcome.status is None
        assert outcome.error is not None and text in outcome.error


async def test_slack_block_kit_matches_the_documented_shape() -> None:
    reference = _fixture("slack_block_kit_header_fields_url_button_assembled.json")
    receiver = Receiver()
    channel = ChannelConfig(name="s", type="slack", url="https://hooks.slack.test/services/T/B/X")
    assert (await _notifier(receiver).send(_out(channel))).ok
    body = json.loads(receiver.requests[0].content)
    assert set(body) == set(reference)
    assert [b["type"] for b in body["blocks"]] == [b["type"] for b in reference["blocks"]]
    header, section, actions = body["blocks"]
    assert header["text"]["type"] == "plain_text" and "Payments failing" in header["text"]["text"]
    assert all(set(f) == {"type", "text"} and f["type"] == "mrkdwn" for f in section["fields"])
    assert any("34%" in f["text"] for f in section["fields"])  # the evidence numbers
    urls = {e["action_id"]: e["url"] for e in actions["elements"]}
    assert urls == {"open_issue": MESSAGE["issue_url"], "acknowledge": MESSAGE["ack_url"]}
    ref_button = reference["blocks"][2]["elements"][0]
    assert set(ref_button) <= set(actions["elements"][0])
    # the secret part of an incoming-webhook URL never shows in the notification log
    assert recipient(channel) == "https://hooks.slack.test/…"


async def test_teams_adaptive_card_matches_the_documented_envelope() -> None:
    reference = _fixture("teams_workflows_adaptive_card.json")
    receiver = Receiver(202)
    channel = ChannelConfig(name="t", type="teams", url="https://prod.workflows.test/x")
    assert (await _notifier(receiver).send(_out(channel))).ok
    body = json.loads(receiver.requests[0].content)
    assert body["type"] == reference["type"] == "message"
    (attachment,) = body["attachments"]
    ref = reference["attachments"][0]
    assert attachment["contentType"] == ref["contentType"]
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    for key in ("$schema", "type", "version"):
        assert card[key] == ref["content"][key]
    assert card["body"][0]["type"] == "TextBlock"
    assert {a["url"] for a in card["actions"]} == {MESSAGE["issue_url"], MESSAGE["ack_url"]}


@pytest.mark.parametrize(
    ("event", "status", "action"),
    [
        ("created", "new", "trigger"),
        ("acknowledged", "new", "acknowledge"),
        ("status", "resolved", "resolve"),
        ("status", "closed", "resolve"),
    ],
)
async def test_pagerduty_events_v2(event: str, status: str, action: str) -> None:
    reference = _fixture("pagerduty_events_v2_trigger.json")
    receiver = Receiver(202, body=_fixture("pagerduty_events_v2_response_202.json"))
    channel = ChannelConfig(name="pd", type="pagerduty", routing_key="R0UT1NGKEY")
    message = {**MESSAGE, "event": event, "status": status}
    outcome = await _notifier(receiver).send(_out(channel, message))
    assert outcome.ok and outcome.status == 202
    request = receiver.requests[0]
    assert str(request.url) == "https://events.pagerduty.com/v2/enqueue"
    body = json.loads(request.content)
    assert body["event_action"] == action
    assert body["dedup_key"] == "hypercare-issue-42"
    assert body["routing_key"] == "R0UT1NGKEY"
    if action == "trigger":
        assert set(body) <= set(reference)
        assert set(body["payload"]) == set(reference["payload"])
        assert body["payload"]["severity"] == "critical"
        assert {link["href"] for link in body["links"]} == {
            MESSAGE["issue_url"],
            MESSAGE["ack_url"],
        }
    else:
        assert "payload" not in body


@pytest.mark.parametrize(
    ("event", "status", "path"),
    [
        ("created", "new", "/v2/alerts"),
        ("acknowledged", "new", "/v2/alerts/hypercare-issue-42/acknowledge"),
        ("status", "verified", "/v2/alerts/hypercare-issue-42/close"),
    ],
)
async def test_opsgenie_alerts(event: str, status: str, path: str) -> None:
    reference = _fixture("opsgenie_create_alert.json")
    receiver = Receiver(202, body=_fixture("opsgenie_create_alert_response_202.json"))
    channel = ChannelConfig(name="og", type="opsgenie", api_key="genie-key")
    message = {**MESSAGE, "event": event, "status": status}
    assert (await _notifier(receiver).send(_out(channel, message))).ok
    request = receiver.requests[0]
    assert request.url.path == path
    assert request.headers["authorization"] == "GenieKey genie-key"
    body = json.loads(request.content)
    if path == "/v2/alerts":
        assert set(body) - {"source"} <= set(reference)
        assert body["alias"] == "hypercare-issue-42" and body["priority"] == "P1"
        assert MESSAGE["ack_url"] in body["description"]
        assert len(body["message"]) <= 130
    else:
        assert request.url.params["identifierType"] == "alias"
        assert set(body) == {"source", "note"}


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append((envelope, message_from_bytes(raw)))
        return "250 Message accepted for delivery"


async def _smtp_server(inbox: _Inbox) -> asyncio.Server:
    """A real SMTP server (aiosmtpd) on a loopback port the OS picks."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SMTP(inbox), "127.0.0.1", 0)


async def test_email_over_a_real_smtp_server() -> None:
    inbox = _Inbox()
    server = await _smtp_server(inbox)
    try:
        port = server.sockets[0].getsockname()[1]
        channel = ChannelConfig(
            name="mail",
            type="email",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_tls="none",
            sender="hypercare@example.com",
            to=["oncall@example.com", "lead@example.com"],
        )
        outcome = await EmailNotifier().send(_out(channel))
    finally:
        server.close()
    assert outcome.ok
    ((envelope, msg),) = inbox.messages
    assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    assert "Payments failing" in msg["Subject"]
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in msg.walk()
        if not p.is_multipart()
    }
    assert set(parts) == {"text/plain", "text/html"}
    for body in parts.values():
        assert MESSAGE["issue_url"] in body and MESSAGE["ack_url"] in body


async def test_email_starttls_refused_by_a_plain_server_is_a_failure() -> None:
    server = await _smtp_server(_Inbox())
    try:
        port = server.sockets[0].getsockname()[1]
        channel = ChannelConfig(
            name="mail",
            type="email",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_tls="starttls",
            sender="hypercare@example.com",
            to=["oncall@example.com"],
        )
        outcome = await EmailNotifier(ssl.create_default_context()).send(_out(channel))
    finally:
        server.close()
    assert not outcome.ok and outcome.error


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (no files shipped)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_email_with_starttls_and_login(tmp_path: Path) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[bytes] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"s3cret"
        if ok:
            logins.append(data.login)
        return AuthResult(success=ok)

    inbox = _Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            inbox,
            tls_context=server_tls,
            require_starttls=True,
            authenticator=authenticator,
            auth_require_tls=True,
        ),
        "127.0.0.1",
        0,
    )
    client_tls = ssl.create_default_context(cafile=str(cert))
    try:
        port = server.sockets[0].getsockname()[1]

        def channel(password: str) -> ChannelConfig:
            return ChannelConfig(
                name="mail",
                type="email",
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_tls="starttls",
                username="hypercare",
                password=password,
                sender="hypercare@example.com",
                to=["oncall@example.com"],
            )

        good = await EmailNotifier(client_tls).send(_out(channel("s3cret")))
    finally:
        server.close()
    assert good.ok, good.error
    assert logins == [b"hypercare"] and len(inbox.messages) == 1
    ((_, msg),) = inbox.messages
    assert "Payments failing" in msg["Subject"]


def test_slack_and_teams_pages_mention_the_person() -> None:
    from hypercare.response.channels import slack_body, teams_body

    slack_tag = rules.mention("slack", "U024BE7LH", "Ann Lee")
    assert slack_tag == {"kind": "slack", "id": "U024BE7LH", "name": "Ann Lee"}
    assert rules.mention("slack", "@ann", "Ann Lee") is None  # a name: plain text
    page = {**MESSAGE, "event": "page", "for": "U024BE7LH", "mention": slack_tag}
    body = slack_body(page)
    assert body["text"].startswith("<@U024BE7LH> Paging: [P1] #42")
    assert body["blocks"][1]["text"]["text"].startswith("<@U024BE7LH> ")
    fields = [f["text"] for f in body["blocks"][2]["fields"]]
    assert fields[0] == "*For:*\n<@U024BE7LH>"

    teams_tag = rules.mention("teams", "ann@contoso.com", "Ann Lee")
    assert rules.mention("teams", "Ann Lee", "Ann Lee") is None
    card = teams_body({**page, "for": "ann@contoso.com", "mention": teams_tag})
    content = card["attachments"][0]["content"]
    assert card["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert content["body"][1]["text"] == "<at>Ann Lee</at> please take a look"
    assert content["msteams"]["entities"] == [
        {
            "type": "mention",
            "text": "<at>Ann Lee</at>",
            "mentioned": {"id": "ann@contoso.com", "name": "Ann Lee"},
        }
    ]
    # a channel message (no person) has no mention
    assert "msteams" not in teams_body(MESSAGE)["attachments"][0]["content"]
    assert not slack_body(MESSAGE)["text"].startswith("<@")

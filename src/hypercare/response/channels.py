"""Channels: what each kind of receiver is sent, and the notifiers that send it.

The message of a delivery is a plain dict fixed when the delivery is made (`Message`);
`payload(kind, ...)` turns it into the receiver's wire format (pure). A `Notifier` has one
method, `send`, and there is one per channel kind: `HttpNotifier` for webhook, Slack,
Teams, PagerDuty and Opsgenie (all through one `httpx.AsyncClient` with timeouts) and
`EmailNotifier` for SMTP. `MemoryNotifier` is the in-memory double for tests.
"""

from __future__ import annotations

import asyncio
import email.policy
import json
import smtplib
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from html import escape
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from hypercare.response import rules
from hypercare.response.config import ChannelConfig
from hypercare.response.rules import webhook_signature
from hypercare.response.transport import PIN_EXTENSION, PooledTransport

SIGNATURE_HEADER = "X-Hypercare-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "hypercare-notify/1"
_ERROR_MAX = 300

_DONE_STATUSES = ("resolved", "verified", "closed")


@dataclass(frozen=True, slots=True)
class Outbound:
    """One attempt to deliver `message` to `channel`."""

    delivery_id: int
    channel: ChannelConfig
    message: Mapping[str, Any]
    idempotency_key: str
    secret: str | None = None  # webhook signing secret (configured or generated)
    # the only addresses to connect to: a URL from the API or the public, checked by the
    # URL guard just before the send and pinned to what was checked (`pin_public`)
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    # False: trying again changes nothing (the URL guard refused the address), so the
    # delivery is dead at once whatever `status` says
    retry: bool = True


class Notifier(Protocol):
    async def send(self, outbound: Outbound) -> Outcome: ...


# --- wire formats (pure) ------------------------------------------------------------------


def headline(m: Mapping[str, Any]) -> str:
    verb = {
        "created": "New",
        "priority": "Reprioritised",
        "status": f"Now {m.get('status')}:",
        "sla": "SLA at risk:" if m.get("sla_state") == "at_risk" else "SLA breached:",
        "escalation": "Escalated:",
        "acknowledged": "Acknowledged:",
        "page": "Paging:",
        "storm_page": "Paging:",
    }.get(str(m.get("event")), "Update:")
    return f"{verb} [{m['priority']}] #{m['issue_id']} {m['title']}"


def _facts(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    facts = [("Priority", str(m["priority"])), ("Status", str(m["status"]))]
    if m.get("for"):  # a page to one person (their Slack/Teams handle, or their name)
        facts.insert(0, ("For", str(m["for"])))
    where = " ".join(str(x) for x in (m.get("component"), m.get("route")) if x)
    if where:
        facts.append(("Where", where))
    if m.get("due_at"):
        facts.append(("SLA due", f"{m['due_at']} ({m.get('sla_state')})"))
    for name, value in (m.get("evidence") or {}).items():
        facts.append((str(name), str(value)))
    return facts


def webhook_body(m: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event": m["event"],
        "issue": {
            "id": m["issue_id"],
            "title": m["title"],
            "priority": m["priority"],
            "status": m["status"],
            "component": m.get("component"),
            "route": m.get("route"),
            "labels": m.get("labels", []),
            "sla_state": m.get("sla_state"),
            "due_at": m.get("due_at"),
            "acknowledged_at": m.get("acknowledged_at"),
            "url": m["issue_url"],
        },
        "text": m.get("text", ""),
        "summary": headline(m),
        "at": m["at"],
        "urls": {"issue": m["issue_url"], "acknowledge": m["ack_url"]},
        "acknowledge_url": m["ack_url"],
    }


def _mention(m: Mapping[str, Any], kind: str) -> dict[str, str] | None:
    found = m.get("mention")
    if isinstance(found, Mapping) and found.get("kind") == kind and found.get("id"):
        return {k: str(v) for k, v in found.items()}
    return None


def slack_body(m: Mapping[str, Any]) -> dict[str, Any]:
    tag = _mention(m, "slack")
    facts = _facts(m)
    if tag:  # a real mention: Slack notifies the person (<@U024BE7LH>)
        facts = [("For", f"<@{tag['id']}>") if n == "For" else (n, v) for n, v in facts]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(m)[:150]}}
    ]
    if tag:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<@{tag['id']}> {headline(m)}"[:3000]},
            }
        )
    return {
        "text": (f"<@{tag['id']}> " if tag else "") + headline(m),
        "blocks": [
            *blocks,
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}:*\n{value}"[:2000]}
                    for name, value in facts[:10]
                ],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open issue"},
                        "url": m["issue_url"],
                        "action_id": "open_issue",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Acknowledge"},
                        "url": m["ack_url"],
                        "action_id": "acknowledge",
                        "style": "primary",
                    },
                ],
            },
        ],
    }


def teams_body(m: Mapping[str, Any]) -> dict[str, Any]:
    card = _teams_card(m)
    tag = _mention(m, "teams")
    if tag:  # a real mention: Teams notifies the person named by their UPN
        at = f"<at>{tag.get('name') or tag['id']}</at>"
        card["body"].insert(
            1, {"type": "TextBlock", "text": f"{at} please take a look", "wrap": True}
        )
        card["msteams"] = {
            "entities": [
                {
                    "type": "mention",
                    "text": at,
                    "mentioned": {"id": tag["id"], "name": tag.get("name") or tag["id"]},
                }
            ]
        }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def _teams_card(m: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.2",
        "body": [
            {
                "type": "TextBlock",
                "text": headline(m),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            {
                "type": "FactSet",
                "facts": [{"title": n, "value": v} for n, v in _facts(m)],
            },
        ],
        "actions": [
            {"type": "Action.OpenUrl", "title": "Open issue", "url": m["issue_url"]},
            {"type": "Action.OpenUrl", "title": "Acknowledge", "url": m["ack_url"]},
        ],
    }


def pager_action(m: Mapping[str, Any]) -> str:
    """trigger / acknowledge / resolve, mirrored from the issue."""
    if m.get("status") in _DONE_STATUSES:
        return "resolve"
    if m.get("event") == "acknowledged":
        return "acknowledge"
    return "trigger"


def dedup_key(m: Mapping[str, Any]) -> str:
    return f"hypercare-issue-{m['issue_id']}"


_SEVERITY = {"P1": "critical", "P2": "error", "P3": "warning"}


def pagerduty_body(m: Mapping[str, Any], routing_key: str) -> dict[str, Any]:
    action = pager_action(m)
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(m),
    }
    if action == "trigger":
        body["payload"] = {
            "summary": headline(m)[:1024],
            "timestamp": m["at"],
            "source": m.get("component") or "hypercare",
            "severity": _SEVERITY.get(str(m["priority"]), "info"),
            "component": m.get("component") or "",
            "group": m.get("route") or "",
            "class": str(m["event"]),
            "custom_details": {
                "issue_id": m["issue_id"],
                "priority": m["priority"],
                "status": m["status"],
                "sla_state": m.get("sla_state"),
                "due_at": m.get("due_at"),
                "acknowledge_url": m["ack_url"],
            },
        }
        body["links"] = [
            {"href": m["issue_url"], "text": "Open in Hypercare"},
            {"href": m["ack_url"], "text": "Acknowledge"},
        ]
        body["client"] = "Hypercare"
        body["client_url"] = m["issue_url"]
    return body


def opsgenie_request(m: Mapping[str, Any], base: str) -> tuple[str, dict[str, Any]]:
    """(url, body): create the alert with the issue as alias, or acknowledge / close it."""
    action = pager_action(m)
    alias = dedup_key(m)
    base = base.rstrip("/")
    if action == "acknowledge":
        return f"{base}/{alias}/acknowledge?identifierType=alias", {
            "source": "Hypercare",
            "note": f"Acknowledged in Hypercare: {m['issue_url']}",
        }
    if action == "resolve":
        return f"{base}/{alias}/close?identifierType=alias", {
            "source": "Hypercare",
            "note": f"Issue {m['status']} in Hypercare: {m['issue_url']}",
        }
    priority = str(m["priority"]) if str(m["priority"]) in ("P1", "P2", "P3", "P4", "P5") else "P3"
    return base, {
        "message": headline(m)[:130],
        "alias": alias,
        "description": f"{m.get('text', '')}\n\nIssue: {m['issue_url']}\n"
        f"Acknowledge: {m['ack_url']}"[:15000],
        "tags": [str(m["priority"]), *[str(x) for x in m.get("labels", [])][:18]],
        "details": {
            "issue_url": m["issue_url"],
            "acknowledge_url": m["ack_url"],
            "status": str(m["status"]),
            "component": str(m.get("component") or ""),
            "route": str(m.get("route") or ""),
        },
        "entity": str(m.get("component") or "hypercare"),
        "source": "Hypercare",
        "priority": priority,
    }


def email_message(m: Mapping[str, Any], sender: str, to: list[str]) -> EmailMessage:
    if "subject" in m and "text" in m:
        return plain_email(m, sender, to)
    msg = EmailMessage()
    msg["Subject"] = headline(m)[:200]
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    lines = [headline(m), ""]
    lines += [f"{name}: {value}" for name, value in _facts(m)]
    lines += ["", f"Open the issue: {m['issue_url']}", f"Acknowledge: {m['ack_url']}"]
    msg.set_content("\n".join(lines) + "\n")
    rows = "".join(
        f"<tr><th align='left'>{escape(n)}</th><td>{escape(v)}</td></tr>" for n, v in _facts(m)
    )
    msg.add_alternative(
        f"<html><body><h2>{escape(headline(m))}</h2><table>{rows}</table>"
        f'<p><a href="{escape(m["issue_url"])}">Open the issue</a> · '
        f'<a href="{escape(m["ack_url"])}">Acknowledge</a></p></body></html>',
        subtype="html",
    )
    return msg


def digest_body(kind: str, m: Mapping[str, Any]) -> dict[str, Any]:
    """A stakeholder digest (hypercare.comms) for Slack / Teams (its Markdown as text) or a
    webhook (its data too)."""
    if kind == "webhook":
        return {"kind": "digest", "subject": m["subject"], "digest": m.get("data") or {}}
    if kind in ("slack", "teams"):
        return {"text": str(m["text"])[:35_000]}
    raise ValueError(f"a digest is not sent to a {kind} channel")


def plain_email(m: Mapping[str, Any], sender: str, to: list[str]) -> EmailMessage:
    """A message written for people outside the team (hypercare.comms): its own `subject`
    and `text` (and `html` when given), and its `headers` (List-Unsubscribe)."""
    # long lines, not folded: a folded List-Unsubscribe URL becomes encoded words, which
    # mail clients do not read as a URL (RFC 2369 wants it in angle brackets as is)
    msg = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    msg["Subject"] = str(m["subject"])[:200]
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    for name, value in (m.get("headers") or {}).items():
        msg[str(name)] = str(value)
    msg.set_content(str(m["text"]))
    if m.get("html"):
        msg.add_alternative(str(m["html"]), subtype="html")
    return msg


def recipient(channel: ChannelConfig) -> str:
    """What the notification log shows as the destination (never a key or a password)."""
    if channel.type == "email":
        return ", ".join(channel.to)[:300]
    endpoint = channel.endpoint or ""
    parts = httpx.URL(endpoint)
    # incoming-webhook URLs carry their secret in the path: show only the origin
    if channel.type in ("slack", "teams"):
        return f"{parts.scheme}://{parts.host}/…"
    return f"{parts.scheme}://{parts.netloc.decode()}{parts.path}"[:300]


# --- notifiers ----------------------------------------------------------------------------


def _short(text: str) -> str:
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 1] + "…"


class HttpNotifier:
    """Webhook, Slack, Teams, PagerDuty and Opsgenie: one POST each, through the one client."""

    def __init__(self, client: httpx.AsyncClient, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock

    def request(self, o: Outbound) -> tuple[str, bytes, dict[str, str]]:
        ch, m = o.channel, o.message
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            IDEMPOTENCY_HEADER: o.idempotency_key,
        }
        url = ch.endpoint or ""
        body: dict[str, Any]
        if m.get("kind") == "digest":
            body = digest_body(ch.type, m)
        elif m.get("kind") == "subscription" and ch.type == "webhook":
            body = dict(m.get("payload") or {})
        elif ch.type == "webhook":
            body = webhook_body(m)
        elif ch.type == "slack":
            body = slack_body(m)
        elif ch.type == "teams":
            body = teams_body(m)
        elif ch.type == "pagerduty":
            body = pagerduty_body(m, ch.routing_key or "")
        elif ch.type == "opsgenie":
            url, body = opsgenie_request(m, url)
            headers["Authorization"] = f"GenieKey {ch.api_key}"
        else:
            raise ValueError(f"HttpNotifier cannot send to a {ch.type} channel")
        raw = json.dumps(body, separators=(",", ":"), default=str).encode()
        if ch.type == "webhook" and o.secret:
            headers[SIGNATURE_HEADER] = webhook_signature(o.secret, int(self.clock()), raw)
        return url, raw, headers

    async def send(self, outbound: Outbound) -> Outcome:
        url, raw, headers = self.request(outbound)
        timeout = outbound.channel.timeout.total_seconds()
        pinned = {PIN_EXTENSION: list(outbound.addresses)} if outbound.addresses else None
        try:
            response = await self.client.post(
                url, content=raw, headers=headers, timeout=timeout, extensions=pinned
            )
        except httpx.TimeoutException:
            return Outcome(False, None, f"timed out after {timeout:g}s")
        except httpx.HTTPError as exc:
            return Outcome(False, None, _short(f"{type(exc).__name__}: {exc}"))
        if 200 <= response.status_code < 300:
            return Outcome(True, response.status_code)
        return Outcome(False, response.status_code, _short(f"HTTP {response.status_code}"))


class EmailNotifier:
    """SMTP with STARTTLS, implicit TLS or neither, and optional login. `smtplib` runs in a
    worker thread so that a slow mail server never holds up the event loop."""

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self.tls_context = tls_context

    def _send_sync(self, o: Outbound) -> None:
        ch = o.channel
        msg = email_message(o.message, ch.sender or "", list(ch.to))
        msg["Message-ID"] = f"<{o.idempotency_key}@hypercare>"
        timeout = ch.timeout.total_seconds()
        context = self.tls_context or ssl.create_default_context()
        port = ch.smtp_port or (465 if ch.smtp_tls == "tls" else 587)
        host = ch.smtp_host or ""
        smtp: smtplib.SMTP
        if ch.smtp_tls == "tls":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if ch.smtp_tls == "starttls":
                smtp.starttls(context=context)
            if ch.username:
                smtp.login(ch.username, ch.password or "")
            smtp.send_message(msg)

    async def send(self, outbound: Outbound) -> Outcome:
        try:
            await asyncio.to_thread(self._send_sync, outbound)
        except smtplib.SMTPResponseException as exc:
            return Outcome(False, exc.smtp_code, _short(f"SMTP {exc.smtp_code}"))
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome(False, None, _short(f"{type(exc).__name__}: {exc}"))
        return Outcome(True, 250)


@dataclass
class MemoryNotifier:
    """Test double: records what it was given; `fail` decides failures (default: none)."""

    sent: list[Outbound] = field(default_factory=list)
    fail: Callable[[Outbound], Outcome | None] = lambda _o: None

    async def send(self, outbound: Outbound) -> Outcome:
        self.sent.append(outbound)
        return self.fail(outbound) or Outcome(True, 200)


@dataclass
class Notifiers:
    """The notifier for each channel kind."""

    by_kind: dict[str, Notifier]

    def for_channel(self, channel: ChannelConfig) -> Notifier:
        return self.by_kind[channel.type]

    @classmethod
    def standard(cls, client: httpx.AsyncClient) -> Notifiers:
        http = HttpNotifier(client)
        kinds: dict[str, Notifier] = dict.fromkeys(
            ("webhook", "slack", "teams", "pagerduty", "opsgenie"), http
        )
        kinds["email"] = EmailNotifier()
        return cls(kinds)


def new_client(max_connections: int = 100) -> httpx.AsyncClient:
    """The one outbound client: bounded timeouts and pool (keep-alive, see
    `hypercare.response.transport`), no redirects followed (a redirect could lead a
    configured target to an address nobody approved)."""
    return httpx.AsyncClient(
        transport=PooledTransport(max_connections=max_connections),
        timeout=httpx.Timeout(10.0, connect=5.0),
        follow_redirects=False,
        trust_env=False,
    )


# --- URLs from the API or the public ------------------------------------------------------

Resolver = Callable[[str], Awaitable[list[str]]]


async def system_resolver(host: str) -> list[str]:
    """The addresses `host` resolves to, through the system's resolver (no lookup for an
    address literal)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


async def _addresses(url: str, resolve: Resolver) -> list[str]:
    host = (urlsplit(url).hostname or "").strip("[]")
    return await resolve(host) if host else []


async def check_public_url(url: str, allow: Sequence[str], resolve: Resolver) -> str | None:
    """Why a URL that came through the API or from the public must not be called, or None.
    `hypercare.response.rules.check_url` decides on the addresses `resolve` gives."""
    return rules.check_url(url, await _addresses(url, resolve), allow)


async def pin_public(
    outbound: Outbound, allow: Sequence[str], resolve: Resolver
) -> Outbound | Outcome:
    """The URL guard at the moment of sending ("public" trust: a subscriber's webhook, a
    test URL): its host is resolved again (DNS may have changed since it was accepted) and
    either refused (a final failure, not retried) or the send is pinned to the addresses
    just checked, so the connection cannot go anywhere else."""
    url = outbound.channel.endpoint or ""
    addresses = await _addresses(url, resolve)
    refusal = rules.check_url(url, addresses, allow)
    if refusal:
        return Outcome(False, None, _short(f"refused at delivery: {refusal}"), retry=False)
    return replace(outbound, addresses=tuple(addresses))

"""Sentry: integration-platform webhooks (issue alerts, issue events) and the legacy
webhooks-plugin format. With a secret configured, ``Sentry-Hook-Signature`` (HMAC-SHA256
of the body, hex) must match."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from typing import Any

from hypercare.feedback.adapters.base import SUMMARY, Integration, now_iso, test_ref
from hypercare.feedback.config import IntegrationOptions
from hypercare.feedback.drafts import (
    Rejected,
    SignalDraft,
    SignalStatus,
    need_object,
    opt_text,
    parse_json,
    parse_time,
    text,
)


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    given = headers.get("sentry-hook-signature", "")
    if not given:
        raise Rejected("missing Sentry-Hook-Signature header (a secret is configured)", status=401)
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.strip().lower(), expected):
        raise Rejected(
            "Sentry-Hook-Signature does not match: check the client secret configured "
            "for this integration",
            status=401,
        )


def _tags(event: dict[str, Any]) -> dict[str, str]:
    tags = event.get("tags")
    out: dict[str, str] = {}
    if isinstance(tags, list):
        for pair in tags[:100]:
            if isinstance(pair, list | tuple) and len(pair) == 2:
                out[text(pair[0], 100)] = text(pair[1], 500)
    elif isinstance(tags, dict):
        out = {text(k, 100): text(v, 500) for k, v in list(tags.items())[:100]}
    return out


def _event_draft(
    event: dict[str, Any], *, issue_id: Any, status: SignalStatus, raw: Any, rule: str | None
) -> SignalDraft:
    tags = _tags(event)
    request = event.get("request") if isinstance(event.get("request"), dict) else {}
    url = text((request or {}).get("url") or tags.get("url"), 500)
    path = None
    if url:
        after_scheme = url.split("://", 1)[-1]
        path = "/" + after_scheme.split("/", 1)[1].split("?", 1)[0] if "/" in after_scheme else "/"
    key = issue_id or event.get("issue_id") or event.get("event_id") or event.get("id")
    if not key:
        raise Rejected("the Sentry event has no issue_id or event_id to group it by")
    trace = (
        event.get("contexts", {}).get("trace", {})
        if isinstance(event.get("contexts"), dict)
        else {}
    )
    return SignalDraft(
        kind="system",
        source="sentry",
        summary=text(event.get("title") or event.get("message") or "Sentry event", 500),
        body=text(event.get("culprit")),
        dedup_key=f"sentry:issue:{text(key, 100)}",
        raw=raw,
        severity=opt_text(event.get("level"), 40),
        status=status,
        occurred_at=parse_time(event.get("datetime") or event.get("timestamp")),
        component=opt_text(tags.get("component") or event.get("project"), 120),
        service=opt_text(tags.get("server_name") or tags.get("service"), 120),
        route=opt_text(path or tags.get("transaction"), 200),
        request_ids=tuple(v for k, v in tags.items() if k in ("request_id", "x-request-id")),
        trace_id=opt_text(trace.get("trace_id") if isinstance(trace, dict) else None, 64),
        user_ref=opt_text(tags.get("sentry:user"), 200),
        labels={**tags, **({"rule": rule} if rule else {})},
    )


def parse(
    body: bytes, headers: Mapping[str, str], options: IntegrationOptions
) -> list[SignalDraft]:
    if options.secret:
        verify(body, headers, options.secret)
    payload = need_object(parse_json(body), "the Sentry webhook")
    resource = headers.get("sentry-hook-resource", "")
    data = payload.get("data")
    if isinstance(data, dict):
        if isinstance(data.get("event"), dict):
            rule = data.get("triggered_rule")
            return [
                _event_draft(
                    data["event"],
                    issue_id=data["event"].get("issue_id"),
                    status="firing",
                    raw=payload,
                    rule=text(rule, 200) or None,
                )
            ]
        if isinstance(data.get("issue"), dict):
            issue = data["issue"]
            action = payload.get("action")
            status: SignalStatus = "resolved" if action == "resolved" else "firing"
            return [
                SignalDraft(
                    kind="system",
                    source="sentry",
                    summary=text(issue.get("title") or "Sentry issue", 500),
                    body=text(issue.get("culprit")),
                    dedup_key=f"sentry:issue:{text(issue.get('id'), 100)}",
                    raw=payload,
                    severity=opt_text(issue.get("level"), 40),
                    status=status,
                    occurred_at=parse_time(issue.get("lastSeen")),
                    labels={"action": text(action, 40), "resource": resource or "issue"},
                )
            ]
        raise Rejected(
            f"unsupported Sentry webhook resource {resource or 'unknown'!r}: "
            "send issue alerts (event_alert) or issue events"
        )
    if "project_slug" in payload or "triggering_rules" in payload:
        event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
        rules = payload.get("triggering_rules")
        merged = {"level": payload.get("level"), "culprit": payload.get("culprit"), **(event or {})}
        merged.setdefault("title", payload.get("message"))
        return [
            _event_draft(
                merged,
                issue_id=payload.get("id"),
                status="firing",
                raw=payload,
                rule=", ".join(map(str, rules)) if isinstance(rules, list) else None,
            )
        ]
    raise Rejected(
        "not a Sentry webhook: expected 'data.event' (issue alert), 'data.issue' "
        "or the legacy plugin fields ('project_slug', 'event')"
    )


def sample(options: IntegrationOptions) -> tuple[bytes, dict[str, str]]:
    """An integration-platform issue alert (event_alert.triggered), signed with the
    integration's client secret when it has one."""
    event = {
        "action": "triggered",
        "data": {
            "event": {
                "event_id": uuid.uuid4().hex,
                "issue_id": test_ref(),
                "title": SUMMARY.format(kind="sentry"),
                "culprit": "hypercare.console",
                "level": "info",
                "datetime": now_iso(),
                "tags": [["test", "true"]],
            },
            "triggered_rule": "Hypercare test",
        },
    }
    body = json.dumps(event).encode()
    headers = {"sentry-hook-resource": "event_alert"}
    if options.secret:
        digest = hmac.new(options.secret.encode(), body, hashlib.sha256).hexdigest()
        headers["sentry-hook-signature"] = digest
    return body, headers


INTEGRATION = Integration(type="sentry", parse=parse, sample=sample, dedup="the Sentry issue id")

"""PagerDuty Events API v2 compatible intake: trigger / acknowledge / resolve by dedup_key,
so any tool that can page PagerDuty can send here unchanged. Change events are kept as
information (no issue)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from hypercare.feedback.adapters.base import SUMMARY, Integration, now_iso, test_ref
from hypercare.feedback.config import IntegrationOptions
from hypercare.feedback.drafts import (
    Rejected,
    SignalDraft,
    need_object,
    opt_text,
    parse_json,
    parse_time,
    str_labels,
    text,
)

SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


def parse(
    body: bytes, headers: Mapping[str, str], options: IntegrationOptions
) -> list[SignalDraft]:
    event = need_object(parse_json(body), "the event")
    action = event.get("event_action")
    payload: Any = event.get("payload")
    if action is None and isinstance(payload, dict) and "severity" not in payload:
        # a change event (Events API v2 /v2/change/enqueue shape)
        if not payload.get("summary"):
            raise Rejected("payload.summary is required")
        return [
            SignalDraft(
                kind="system",
                source="pagerduty",
                summary=text(payload["summary"], 500),
                body=text(payload.get("custom_details")),
                dedup_key=f"pagerduty:change:{uuid.uuid4().hex}",
                raw=event,
                severity="info",
                occurred_at=parse_time(payload.get("timestamp")),
                service=opt_text(payload.get("source"), 120),
                labels={"event": "change"},
                create_issue=False,
            )
        ]
    if action not in ACTIONS:
        raise Rejected(f"'event_action' must be one of {', '.join(ACTIONS)}; got {action!r}")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        raise Rejected("'dedup_key' must be a non-empty string of at most 255 characters")
    if action != "trigger":
        if not dedup:
            raise Rejected(f"'dedup_key' is required for {action} events")
        return [
            SignalDraft(
                kind="system",
                source="pagerduty",
                summary=f"{action} {dedup}",
                dedup_key=f"pagerduty:{dedup}",
                raw=event,
                status="resolved" if action == "resolve" else None,
                labels={"event_action": action, "dedup_key": dedup},
            )
        ]
    payload = need_object(payload, "'payload'")
    missing = [f for f in ("summary", "source", "severity") if not payload.get(f)]
    if missing:
        raise Rejected(f"payload is missing {', '.join(missing)} (required for trigger)")
    if payload["severity"] not in SEVERITIES:
        raise Rejected(f"payload.severity must be one of {', '.join(SEVERITIES)}")
    dedup = dedup or uuid.uuid4().hex
    labels = {
        k: text(payload.get(k), 200)
        for k in ("source", "component", "group", "class")
        if payload.get(k)
    }
    labels.update({"event_action": action, "dedup_key": dedup})
    details = payload.get("custom_details")
    return [
        SignalDraft(
            kind="system",
            source="pagerduty",
            summary=text(payload["summary"], 500),
            body=text(details),
            dedup_key=f"pagerduty:{dedup}",
            raw=event,
            severity=payload["severity"],
            status="firing",
            occurred_at=parse_time(payload.get("timestamp")),
            component=opt_text(payload.get("component"), 120),
            service=opt_text(payload.get("source"), 120),
            labels={**str_labels(details if isinstance(details, dict) else {}), **labels},
        )
    ]


def sample(options: IntegrationOptions) -> tuple[bytes, dict[str, str]]:
    event = {
        "routing_key": "test",
        "event_action": "trigger",
        "dedup_key": test_ref(),
        "payload": {
            "summary": SUMMARY.format(kind="pagerduty"),
            "source": "hypercare-console",
            "severity": "info",
            "timestamp": now_iso(),
        },
    }
    return json.dumps(event).encode(), {}


INTEGRATION = Integration(
    type="pagerduty",
    parse=parse,
    sample=sample,
    dedup="the event's dedup_key",
    intake="v2/enqueue",
)

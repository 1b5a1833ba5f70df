"""Datadog Webhooks integration: the default payload ($EVENT_TITLE, $EVENT_MSG, ...) and
the common extra variables ($ALERT_ID, $ALERT_TRANSITION, $ALERT_TYPE, $PRIORITY, $TAGS)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from hypercare.feedback.adapters.base import SUMMARY, TEST_DETAIL, Integration, test_ref
from hypercare.feedback.config import IntegrationOptions
from hypercare.feedback.drafts import (
    Rejected,
    SignalDraft,
    need_object,
    opt_text,
    parse_json,
    parse_time,
    text,
)

_PREFIX = re.compile(
    r"^\s*\[(Triggered|Recovered|Warn|Re-Triggered|No Data|Renotify)[^\]]*\]\s*", re.I
)
_PLACEHOLDER = re.compile(r"^\$[A-Z_]+$")


def parse(
    body: bytes, headers: Mapping[str, str], options: IntegrationOptions
) -> list[SignalDraft]:
    payload = need_object(parse_json(body), "the Datadog webhook")
    title = payload.get("title")
    if not isinstance(title, str) or not title.strip():
        raise Rejected('\'title\' is required: keep "title": "$EVENT_TITLE" in the payload')
    unfilled = sorted(k for k, v in payload.items() if isinstance(v, str) and _PLACEHOLDER.match(v))
    if unfilled:
        raise Rejected(
            f"template variables were not substituted in {', '.join(unfilled)}: "
            "use the variable names Datadog documents (e.g. $EVENT_TITLE)"
        )
    m = _PREFIX.match(title)
    transition = str(payload.get("alert_transition") or (m.group(1) if m else "")).lower()
    resolved = transition in ("recovered", "resolved")
    name = title[m.end() :] if m else title
    group = payload.get("alert_id") or payload.get("aggregate") or name
    tags: dict[str, str] = {}
    raw_tags = payload.get("tags")
    if isinstance(raw_tags, str):
        for part in raw_tags.split(",")[:100]:
            k, _, v = part.strip().partition(":")
            if k:
                tags[k[:100]] = v[:200]
    severity = payload.get("alert_type") or payload.get("priority")
    return [
        SignalDraft(
            kind="system",
            source="datadog",
            summary=text(name or title, 500),
            body=text(payload.get("body")),
            dedup_key=f"datadog:{text(group, 300)}",
            raw=payload,
            severity=opt_text(severity, 40),
            status="resolved" if resolved else "firing",
            occurred_at=parse_time(payload.get("date") or payload.get("last_updated")),
            component=opt_text(tags.get("component"), 120),
            service=opt_text(tags.get("service"), 120),
            labels={**tags, "event_type": text(payload.get("event_type"), 100)},
        )
    ]


def sample(options: IntegrationOptions) -> tuple[bytes, dict[str, str]]:
    """Datadog's default webhook payload with its variables filled in."""
    event = {
        "title": "[Triggered] " + SUMMARY.format(kind="datadog"),
        "body": TEST_DETAIL,
        "alert_id": test_ref(),
        "alert_transition": "Triggered",
        "alert_type": "info",
        "event_type": "query_alert_monitor",
        "date": int(datetime.now(UTC).timestamp() * 1000),
        "tags": "test:true,source:hypercare",
    }
    return json.dumps(event).encode(), {}


INTEGRATION = Integration(
    type="datadog",
    parse=parse,
    sample=sample,
    dedup="the alert id, or the title without its [Triggered] / [Recovered] prefix",
)

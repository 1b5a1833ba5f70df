"""Pure helpers of the intake path: header redaction, and drafts from user and team
feedback bodies."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from hypercare.feedback.drafts import SignalDraft
from hypercare.feedback.models import SurveyIn, TeamNoteIn, TicketIn

_SECRET_HEADERS = {
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "x-api-key",
    "sentry-hook-signature",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-amz-sns-signature",
}
_KEEP_MAX = 50
REDACTED = "[redacted]"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to store: secrets and signatures replaced, size bounded."""
    out: dict[str, str] = {}
    for name, value in list(headers.items())[:_KEEP_MAX]:
        low = name.lower()
        secret = low in _SECRET_HEADERS or "token" in low or "signature" in low or "secret" in low
        out[low] = REDACTED if secret else value[:1000]
    return out


def _path(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).path[:200] or "/"
    except ValueError:
        return None


def feedback_draft(body: TicketIn | SurveyIn, *, via: str, raw: Any) -> SignalDraft:
    """A user feedback body as a signal. Tickets, bugs and feature requests open issues;
    survey answers are scores and stand alone."""
    common: dict[str, Any] = {
        "kind": "user",
        "raw": raw,
        "route": _path(body.url),
        "component": body.component,
        "request_ids": tuple(body.request_ids),
        "user_ref": body.requester,
    }
    labels = {"via": via}
    if body.url:
        labels["url"] = body.url[:500]
    if body.user_agent:
        labels["user_agent"] = body.user_agent[:500]
    if isinstance(body, SurveyIn):
        return SignalDraft(
            source=body.type,
            summary=f"{body.type.upper()} {body.score}"
            + (f": {body.comment[:200]}" if body.comment else ""),
            body=body.comment,
            dedup_key=f"{body.type}:{uuid.uuid4().hex}",
            score=body.score,
            labels=labels,
            create_issue=False,
            **common,
        )
    source = "ticket" if body.type == "ticket" else body.type
    labels["channel"] = body.channel
    labels["type"] = body.type
    return SignalDraft(
        source=source,
        summary=body.subject,
        body=body.description,
        dedup_key=f"{source}:{body.dedup_key or uuid.uuid4().hex}",
        severity=body.severity,
        labels=labels,
        **common,
    )


def team_draft(body: TeamNoteIn, *, author: str, raw: Any) -> SignalDraft:
    """Team notes are signals of kind team; linked to an issue when one is named."""
    first_line = body.text.strip().splitlines()[0] if body.text.strip() else body.type
    return SignalDraft(
        kind="team",
        source=body.type,
        summary=first_line[:300],
        body=body.text,
        dedup_key=f"team:{body.type}:{uuid.uuid4().hex}",
        raw=raw,
        component=body.component,
        user_ref=author,
        issue_id=body.issue_id,
        labels={"url": body.url[:500]} if body.url else {},
        create_issue=False,
    )

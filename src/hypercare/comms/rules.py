"""Pure decisions of messages to people outside the team: who left a usable contact,
which status change sends the "fixed" message, and what it says. No I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from hypercare.status.rules import render_template

FIXED_EVENT = "fixed"  # the `event` of a "fixed" message delivery
FIXED_VARIABLES = ("title", "issue_id", "component", "report", "reported_at", "status")
# an address as people type it into a form: one @, a dot in the domain, no spaces
_EMAIL = re.compile(r"^[^@\s<>,;\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


def contact_of(user_ref: str | None) -> str | None:
    """The email address a reporter left (`requester`, stored as the signal's
    `user_ref`), lower-cased, or None when it is not one."""
    value = (user_ref or "").strip()
    return value.lower() if _EMAIL.match(value) else None


def sends_fixed(kind: str, data: Mapping[str, Any], on: Sequence[str]) -> bool:
    """A timeline entry that moves the issue into one of the statuses `on`."""
    return kind == "status" and data.get("to") in on


class Report(NamedTuple):
    signal_id: int
    contact: str
    summary: str
    reported_at: datetime


def recipients(reports: Iterable[Report], already: Iterable[str]) -> list[Report]:
    """One report per contact (the first), leaving out contacts already told."""
    told = set(already)
    out = []
    for r in sorted(reports, key=lambda r: (r.reported_at, r.signal_id)):
        if r.contact not in told:
            told.add(r.contact)
            out.append(r)
    return out


def fixed_message(
    *,
    subject: str,
    body: str,
    report: Report,
    issue_id: int,
    title: str,
    component: str | None,
    status: str,
) -> dict[str, Any]:
    """The delivery's message: a plain email to the reporter (`to`), nothing internal
    beyond the issue's title."""
    values = {
        "title": title,
        "issue_id": issue_id,
        "component": component or "",
        "report": report.summary,
        "reported_at": report.reported_at.strftime("%Y-%m-%d %H:%M UTC"),
        "status": status,
    }
    return {
        "kind": FIXED_EVENT,
        "to": [report.contact],
        "subject": render_template(subject, values, FIXED_VARIABLES).replace("\n", " ")[:200],
        "text": render_template(body, values, FIXED_VARIABLES) + "\n",
        "signal_id": report.signal_id,
        "issue_id": issue_id,
    }


# --- subscribers: signed links ------------------------------------------------------------

CONFIRM = "confirm"
UNSUBSCRIBE = "unsubscribe"


class LinkError(ValueError):
    """A confirm or unsubscribe link that cannot be used; the message is for the page."""


def sign_link(key: bytes, action: str, subscriber_id: int, expires: int) -> str:
    """A token for `action` on a subscriber: ``<id>.<expires>.<mac>`` (`expires` in Unix
    seconds, 0: never), MAC'd with the response signing key."""
    body = f"{subscriber_id}.{expires}"
    return f"{body}.{_mac(key, action, body)}"


def check_link(key: bytes, action: str, token: str, now: float) -> int:
    """The subscriber id of a good token; `LinkError` saying what is wrong otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or not all(p.isascii() and p for p in parts):
        raise LinkError("This link is incomplete or was changed. Copy the whole link again.")
    sid, expires, mac = parts
    if not (sid.isdigit() and expires.isdigit()) or len(sid) > 12 or len(expires) > 12:
        raise LinkError("This link is incomplete or was changed. Copy the whole link again.")
    if not hmac.compare_digest(mac, _mac(key, action, f"{sid}.{expires}")):
        raise LinkError("This link is not valid: it was changed or not made by this page.")
    if int(expires) and now > int(expires):
        raise LinkError("This link has expired. Subscribe again to get a new one.")
    return int(sid)


def _mac(key: bytes, action: str, body: str) -> str:
    digest = hmac.new(key, f"comms-{action}:{body}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def wants(components: Sequence[str], affected: Iterable[str]) -> bool:
    """A subscriber of `components` (empty: every component) is told about `affected`."""
    return not components or bool(set(components) & set(affected))


def confirm_message(*, page: str, confirm_url: str) -> dict[str, Any]:
    return {
        "kind": "subscription",
        "subject": f"Confirm your subscription to {page}"[:200],
        "text": (
            f"Someone (we hope you) asked to be told about incidents and maintenance on "
            f"{page}.\n\nConfirm: {confirm_url}\n\nIf it was not you, ignore this message: "
            "nothing will be sent.\n"
        ),
    }


def update_message(
    *, page: str, subject: str, text: str, unsubscribe_url: str, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """An incident update or maintenance notice for a subscriber: email (with RFC 8058
    one-click unsubscribe headers) or a Statuspage-style webhook `payload`."""
    return {
        "kind": "subscription",
        "subject": f"[{page}] {subject}"[:200],
        "text": f"{text}\n\nUnsubscribe: {unsubscribe_url}\n",
        "headers": {
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "payload": dict(payload),
    }


# --- subscribers: what they are told ------------------------------------------------------

MAINTENANCE_NOTICE_SECONDS = 3600.0  # "before": this long before a window starts


def maintenance_phase(
    *, start: float, end: float, completed: float | None, now: float, notice: float
) -> str | None:
    """What subscribers are told about a maintenance window now: ``before`` (within
    `notice` of its start), ``start``, ``end`` (over, or completed early), or None."""
    if completed is not None or now >= end:
        return "end"
    if now >= start:
        return "start"
    if now >= start - notice:
        return "before"
    return None


def incident_payload(
    *, page: str, incident: Mapping[str, Any], update: Mapping[str, Any], unsubscribe_url: str
) -> dict[str, Any]:
    """A Statuspage-style webhook body for one incident update."""
    return {
        "meta": {"unsubscribe": unsubscribe_url, "generated_at": update["created_at"]},
        "page": {"name": page},
        "incident": {**incident, "incident_updates": [dict(update)]},
    }


def maintenance_payload(
    *, page: str, maintenance: Mapping[str, Any], phase: str, unsubscribe_url: str
) -> dict[str, Any]:
    status = {"before": "scheduled", "start": "in_progress", "end": "completed"}[phase]
    return {
        "meta": {"unsubscribe": unsubscribe_url},
        "page": {"name": page},
        "incident": {**maintenance, "status": status, "impact": "maintenance"},
    }

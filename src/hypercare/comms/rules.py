"""Pure decisions of messages to people outside the team: who left a usable contact,
which status change sends the "fixed" message, and what it says. No I/O."""

from __future__ import annotations

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

"""Pure console decisions: CSRF tokens, redirects, cookie flags, countdowns, sorting.

No I/O here, so each rule is tested without a server.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Literal

SESSION_COOKIE = "hc_session"
SIGNIN_COOKIE = "hc_signin"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


def new_secret() -> str:
    """256 random bits, URL-safe: session ids and sign-in form nonces."""
    return secrets.token_urlsafe(32)


def hash_sid(sid: str) -> str:
    """What the store keeps of a session id (the id itself only lives in the cookie)."""
    return hashlib.sha256(b"session:" + sid.encode("utf-8")).hexdigest()


def csrf_token(sid: str) -> str:
    """The synchronizer token of a session, derived from its id.

    Only the holder of the HttpOnly cookie can know it, and it is never stored, so a form
    or htmx request that carries it was made by a page this console served to that browser.
    """
    return hmac.new(sid.encode("utf-8"), b"hypercare-csrf", hashlib.sha256).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this console only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 for c in target):
        return "/"
    return target


def cookie_secure(mode: Literal["auto", "always", "never"], scheme: str) -> bool:
    if mode == "always":
        return True
    if mode == "never":
        return False
    return scheme == "https"


def countdown(due: datetime | None, now: datetime, stopped_at: datetime | None = None) -> str:
    """Time left until `due` ("2h 05m left") or past it ("overdue 12m"); "" without SLA."""
    if due is None:
        return ""
    left = due - (stopped_at or now)
    text = _short(abs(left))
    return f"{text} left" if left > timedelta(0) else f"overdue {text}"


def _short(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def absolute(value: datetime, now: datetime) -> str:
    """The console's one clock: UTC, the date left out for today.

    >>> absolute(datetime(2026, 12, 6, 9, 5, tzinfo=UTC), datetime(2026, 12, 6, 12, tzinfo=UTC))
    '09:05 UTC'
    """
    value = value.astimezone(UTC)
    if value.date() == now.astimezone(UTC).date():
        return value.strftime("%H:%M UTC")
    return value.strftime("%Y-%m-%d %H:%M UTC")


def relative(value: datetime, now: datetime) -> str:
    """ "just now", "12m 05s ago", "in 3h 10m" (rounded to whole seconds)."""
    seconds = round((now - value).total_seconds())
    if abs(seconds) < 60:
        return "just now"
    text = _short(timedelta(seconds=abs(seconds)))
    return f"{text} ago" if seconds > 0 else f"in {text}"


def stamp(value: datetime, now: datetime) -> str:
    """Relative plus absolute, the way every time in the console reads.

    >>> stamp(datetime(2026, 12, 6, 9, 5, tzinfo=UTC), datetime(2026, 12, 6, 9, 17, tzinfo=UTC))
    '12m 00s ago · 09:05 UTC'
    """
    return f"{relative(value, now)} · {absolute(value, now)}"


_ISO = re.compile(r"\b(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})")


def readable_times(text: str) -> str:
    """ISO-8601 timestamps inside stored text (timeline entries written by older versions)
    in the console's clock.

    >>> readable_times("SLA at risk (due 2026-12-06T21:30:00+00:00)")
    'SLA at risk (due 2026-12-06 21:30 UTC)'
    """

    def one(m: re.Match[str]) -> str:
        try:
            at = datetime.fromisoformat(m.group(0).replace("Z", "+00:00"))
        except ValueError:
            return m.group(0)
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

    return _ISO.sub(one, text)


def duration(seconds: float | None) -> str:
    """MTTx for people: "—" until known, else "1h 05m" and the like."""
    if seconds is None:
        return "—"
    return _short(timedelta(seconds=round(seconds)))


# The triage queue's sort keys, as offered in its column headers.
SORTS = ("urgency", "id", "priority", "status", "due", "updated", "assignee", "component")
SortKey = Literal["urgency", "id", "priority", "status", "due", "updated", "assignee", "component"]


def parse_sort(value: str | None) -> tuple[str, bool]:
    """`"-updated"` → ("updated", descending). Unknown keys fall back to urgency."""
    if not value:
        return "urgency", False
    descending = value.startswith("-")
    key = value.lstrip("-")
    return (key, descending) if key in SORTS else ("urgency", False)


HOUR = 3600


def chart_window(start: float, step: int) -> tuple[float, int]:
    """The start and step a chart asks the telemetry for. A step of an hour or more is
    rounded up to whole hours and the start down to an hour boundary, so the query can read
    hour rollups (60 times fewer rows than minutes) instead of a week of minute rows.

    >>> chart_window(7_250.0, 2_520)
    (7200.0, 3600)
    """
    if step < HOUR:
        return start, step
    whole = -(-step // HOUR) * HOUR
    return start - start % HOUR, whole


# Paths whose errors stay JSON whatever the client accepts: the API, health and metrics.
_MACHINE_PATHS = ("/api/", "/healthz", "/readyz", "/metrics", "/live", "/static/")


def wants_page(path: str, accept: str, htmx: bool) -> bool:
    """Whether an error on `path` is answered as a console page (or, for htmx, a message
    fragment) instead of JSON: a browser asking for HTML anywhere outside the API.

    >>> wants_page("/issues/abc", "text/html,application/xhtml+xml", False)
    True
    >>> wants_page("/api/v1/issues/abc", "text/html", False)
    False
    """
    if path.startswith(_MACHINE_PATHS):
        return False
    return htmx or "text/html" in accept

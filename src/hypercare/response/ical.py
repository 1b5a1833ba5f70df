"""iCalendar (RFC 5545) feeds of on-call shifts, written by hand.

Lines end in CRLF and are folded at 75 octets without splitting a UTF-8 sequence
(RFC 5545 §3.1); TEXT values escape backslash, semicolon, comma and newlines (§3.3.11);
times are UTC (``19970714T173000Z``, §3.3.5), so no VTIMEZONE is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from hypercare.response.oncall import Shift

PRODID = "-//Hypercare//On-call//EN"


def escape_text(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def fold(line: str) -> str:
    """One content line, folded into pieces of at most 75 octets joined by CRLF + space."""
    data = line.encode()
    if len(data) <= 75:
        return line
    pieces: list[str] = []
    current = b""
    limit = 75
    for ch in line:
        enc = ch.encode()
        if len(current) + len(enc) > limit:
            pieces.append(current.decode())
            current = b""
            limit = 74  # continuation lines start with one space
        current += enc
    pieces.append(current.decode())
    return "\r\n ".join(pieces)


def stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar(
    name: str, shifts: Iterable[Shift], *, now: datetime, host: str, url: str | None = None
) -> str:
    """A VCALENDAR with one VEVENT per shift. UIDs are stable for the same shift, so a
    calendar client updates rather than duplicates events on refresh."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape_text(name)}",
    ]
    for shift in shifts:
        about = f"{shift.person} is on call on {shift.schedule} ({shift.layer})."
        uid = f"{shift.schedule}-{shift.person}-{stamp(shift.start)}@{host}"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{escape_text(uid)}",
            f"DTSTAMP:{stamp(now)}",
            f"DTSTART:{stamp(shift.start)}",
            f"DTEND:{stamp(shift.end)}",
            f"SUMMARY:{escape_text(f'On call: {shift.person} ({shift.schedule})')}",
            f"DESCRIPTION:{escape_text(about)}",
        ]
        if url:
            lines.append(f"URL:{url}")
        lines.append("TRANSP:TRANSPARENT")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)

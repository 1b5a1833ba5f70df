from datetime import UTC, datetime

from hypercare.response.ical import calendar, escape_text, fold
from hypercare.response.oncall import Shift


def test_text_escaping() -> None:
    assert escape_text("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"


def test_folding_at_75_octets_keeps_utf8_sequences_whole() -> None:
    line = "SUMMARY:" + "é" * 80  # two octets each
    folded = fold(line)
    pieces = folded.split("\r\n")
    assert all(len(p.encode()) <= 75 for p in pieces)
    assert all(p.startswith(" ") for p in pieces[1:])
    assert "".join(p.removeprefix(" ") if i else p for i, p in enumerate(pieces)) == line
    assert fold("SHORT:x") == "SHORT:x"


def test_calendar_events_in_utc_with_stable_uids() -> None:
    start = datetime(2026, 3, 7, 7, 30, tzinfo=UTC)
    end = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    shift = Shift("prim,ary", "ann", start, end, "layer 1")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    one = calendar("On call; primary", [shift], now=now, host="hc.example")
    two = calendar("On call; primary", [shift], now=now, host="hc.example")
    assert one == two
    lines = one.split("\r\n")
    assert lines[-1] == "" and lines[-2] == "END:VCALENDAR"
    assert "X-WR-CALNAME:On call\\; primary" in lines
    assert "DTSTART:20260307T073000Z" in lines and "DTEND:20260308T070000Z" in lines
    assert "UID:prim\\,ary-ann-20260307T073000Z@hc.example" in lines
    assert lines.count("BEGIN:VEVENT") == 1 and lines.count("END:VEVENT") == 1

"""Pure console rules: CSRF derivation, redirects, cookie flags, countdowns, sort keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hypercare.web import rules

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_csrf_token_is_tied_to_the_session_and_not_the_id_itself() -> None:
    a, b = rules.new_secret(), rules.new_secret()
    assert a != b and len(a) >= 43
    assert rules.csrf_token(a) == rules.csrf_token(a) != rules.csrf_token(b)
    assert a not in rules.csrf_token(a) and rules.hash_sid(a) != rules.csrf_token(a)
    assert rules.same("x", "x") and not rules.same("x", "y")
    assert not rules.same(None, None) and not rules.same("", "")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, "/"),
        ("/triage?q=x", "/triage?q=x"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/ok\r\nSet-Cookie: x", "/"),
        ("triage", "/"),
    ],
)
def test_safe_next_stays_on_the_console(target: str | None, expected: str) -> None:
    assert rules.safe_next(target) == expected


def test_cookie_secure_modes() -> None:
    assert rules.cookie_secure("auto", "https") and not rules.cookie_secure("auto", "http")
    assert rules.cookie_secure("always", "http") and not rules.cookie_secure("never", "https")


def test_countdown_and_duration_texts() -> None:
    assert rules.countdown(None, NOW) == ""
    assert rules.countdown(NOW + timedelta(hours=2, minutes=5), NOW) == "2h 05m left"
    assert rules.countdown(NOW - timedelta(minutes=12, seconds=3), NOW) == "overdue 12m 03s"
    assert rules.countdown(NOW + timedelta(days=1, hours=3), NOW) == "1d 03h left"
    stopped = NOW - timedelta(hours=1)
    assert rules.countdown(NOW, NOW + timedelta(days=9), stopped) == "1h 00m left"
    assert rules.duration(None) == "—" and rules.duration(59) == "59s"
    assert rules.duration(3900) == "1h 05m"


def test_parse_sort() -> None:
    assert rules.parse_sort(None) == ("urgency", False)
    assert rules.parse_sort("-updated") == ("updated", True)
    assert rules.parse_sort("id") == ("id", False)
    assert rules.parse_sort("-password") == ("urgency", False)


def test_chart_window_uses_whole_hours_for_long_steps() -> None:
    assert rules.chart_window(7_250.0, 900) == (7_250.0, 900)
    assert rules.chart_window(7_250.0, 3_600) == (7_200.0, 3_600)
    assert rules.chart_window(7_250.0, 5_000) == (7_200.0, 7_200)


def test_times_read_one_way_relative_and_absolute_in_utc() -> None:
    from datetime import timezone

    now = datetime(2026, 12, 6, 21, 30, tzinfo=UTC)
    assert rules.stamp(now - timedelta(minutes=12), now) == "12m 00s ago · 21:18 UTC"
    assert rules.stamp(now - timedelta(seconds=20), now) == "just now · 21:29 UTC"
    assert rules.stamp(now + timedelta(hours=2), now) == "in 2h 00m · 23:30 UTC"
    assert rules.stamp(now - timedelta(days=2), now) == "2d 00h ago · 2026-12-04 21:30 UTC"
    # another zone is shown on the console's one clock
    paris = datetime(2026, 12, 6, 22, 0, tzinfo=timezone(timedelta(hours=1)))
    assert rules.absolute(paris, now) == "21:00 UTC"


def test_iso_timestamps_in_stored_text_become_readable() -> None:
    assert (
        rules.readable_times("SLA at risk (due 2026-12-06T21:30:00+00:00)")
        == "SLA at risk (due 2026-12-06 21:30 UTC)"
    )
    assert rules.readable_times("until 2026-12-06T22:30:05.123+01:00.") == (
        "until 2026-12-06 21:30 UTC."
    )
    assert rules.readable_times("version 2026-12-06 and id 12:30") == (
        "version 2026-12-06 and id 12:30"
    )


def test_errors_are_pages_only_for_browsers_outside_the_api() -> None:
    html = "text/html,application/xhtml+xml,*/*;q=0.8"
    assert rules.wants_page("/issues/abc", html, False)
    assert rules.wants_page("/apis/x", "*/*", True)
    assert not rules.wants_page("/issues/abc", "*/*", False)
    assert not rules.wants_page("/api/v1/issues/abc", html, False)
    assert not rules.wants_page("/healthz", html, False)

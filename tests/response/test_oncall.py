"""Schedule math across real DST transitions (US 2026-03-08 / 2026-11-01, EU 2026-03-29 /
2026-10-25), with zoneinfo."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypercare.response.oncall import (
    Layer,
    Override,
    Schedule,
    Window,
    layer_shifts,
    local_gap,
    next_shifts,
    on_call,
    person_shifts,
    resolve,
    shifts,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LONDON = ZoneInfo("Europe/London")
WEEKDAYS = frozenset(range(5))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def sched(zone: ZoneInfo, *layers: Layer, name: str = "primary") -> Schedule:
    return Schedule(name, zone, layers)


def daily(members: tuple[str, ...], start: datetime, **kw: object) -> Layer:
    return Layer("base", members, start, timedelta(days=1), **kw)  # type: ignore[arg-type]


def test_resolve_plain_skipped_and_repeated_local_times() -> None:
    assert resolve(datetime(2026, 1, 10, 9, 0), NY) == utc(2026, 1, 10, 14, 0)
    # 02:30 never happens on 2026-03-08 in New York: the clocks jump 02:00 EST -> 03:00 EDT
    assert local_gap(datetime(2026, 3, 8, 2, 30), NY)
    assert resolve(datetime(2026, 3, 8, 2, 30), NY) == utc(2026, 3, 8, 7, 0)
    assert resolve(datetime(2026, 3, 8, 2, 0), NY) == utc(2026, 3, 8, 7, 0)
    assert resolve(datetime(2026, 3, 8, 3, 0), NY) == utc(2026, 3, 8, 7, 0)
    # Europe: 02:30 on 2026-03-29 in Berlin is skipped too (02:00 CET -> 03:00 CEST)
    assert resolve(datetime(2026, 3, 29, 2, 30), BERLIN) == utc(2026, 3, 29, 1, 0)
    # 01:30 happens twice on 2026-11-01 in New York: the first one (EDT) is meant
    assert not local_gap(datetime(2026, 11, 1, 1, 30), NY)
    assert resolve(datetime(2026, 11, 1, 1, 30), NY) == utc(2026, 11, 1, 5, 30)


def test_resolve_is_monotone_through_both_transitions() -> None:
    for zone, day in ((NY, datetime(2026, 3, 8)), (NY, datetime(2026, 11, 1))):
        instants = [resolve(day + timedelta(minutes=m), zone) for m in range(0, 6 * 60, 5)]
        assert instants == sorted(instants)


def test_daily_handoff_at_0230_across_the_us_spring_forward() -> None:
    s = sched(NY, daily(("ann", "bob", "cat"), datetime(2026, 3, 6, 2, 30)))
    got = [
        (x.person, x.start, x.end) for x in shifts(s, [], utc(2026, 3, 7, 12), utc(2026, 3, 9, 12))
    ]
    assert got == [
        # 2026-03-07 02:30 EST .. the jump on the 8th (02:30 does not exist): 23.5 hours
        ("bob", utc(2026, 3, 7, 12), utc(2026, 3, 8, 7, 0)),
        # from the jump (03:00 EDT) to 02:30 EDT on the 9th
        ("cat", utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)),
        ("ann", utc(2026, 3, 9, 6, 30), utc(2026, 3, 9, 12)),
    ]
    whole = on_call(s, [], utc(2026, 3, 8, 6, 59))
    assert whole is not None
    assert (whole.person, whole.start, whole.end) == (
        "bob",
        utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 8, 7, 0),
    )
    assert whole.end - whole.start == timedelta(hours=23, minutes=30)
    after = on_call(s, [], utc(2026, 3, 8, 7, 0))
    assert after is not None and after.person == "cat"


def test_weekly_rotation_across_the_eu_fall_back_keeps_monday_0900_local() -> None:
    layer = Layer("weekly", ("ann", "bob"), datetime(2026, 10, 5, 9, 0), timedelta(days=7))
    s = sched(BERLIN, layer)
    week = on_call(s, [], utc(2026, 10, 25, 12))
    assert week is not None
    # Mon 19 Oct 09:00 CEST (07:00Z) .. Mon 26 Oct 09:00 CET (08:00Z): one hour longer
    assert (week.person, week.start, week.end) == (
        "ann",
        utc(2026, 10, 19, 7),
        utc(2026, 10, 26, 8),
    )
    assert week.end - week.start == timedelta(days=7, hours=1)
    for shift in shifts(s, [], utc(2026, 9, 1), utc(2026, 12, 31)):
        assert shift.start == utc(2026, 9, 1) or shift.start.astimezone(BERLIN).time() == time(9)
        assert shift.start == utc(2026, 9, 1) or shift.start.astimezone(BERLIN).weekday() == 0


def test_weekly_rotation_across_the_us_fall_back() -> None:
    layer = Layer("weekly", ("ann", "bob"), datetime(2026, 10, 26, 10, 0), timedelta(days=7))
    s = sched(NY, layer)
    week = on_call(s, [], utc(2026, 11, 1, 12))
    assert week is not None
    assert (week.start, week.end) == (utc(2026, 10, 26, 14), utc(2026, 11, 2, 15))


def test_twelve_hour_turns_stay_at_0800_and_2000_local_across_spring_forward() -> None:
    layer = Layer("halves", ("day", "night"), datetime(2026, 3, 6, 8, 0), timedelta(hours=12))
    s = sched(NY, layer)
    got = shifts(s, [], utc(2026, 3, 7, 13), utc(2026, 3, 9, 13))
    locals_ = [(x.person, x.start.astimezone(NY).strftime("%d %H:%M")) for x in got[1:]]
    assert locals_ == [
        ("night", "07 20:00"),
        ("day", "08 08:00"),
        ("night", "08 20:00"),
        ("day", "09 08:00"),
    ]
    # the night across the jump is 11 hours long
    assert got[1].end - got[1].start == timedelta(hours=11)


def test_handoff_in_the_repeated_hour_is_the_first_occurrence() -> None:
    s = sched(NY, daily(("ann", "bob"), datetime(2026, 10, 30, 1, 30)))
    at = on_call(s, [], utc(2026, 11, 1, 5, 45))  # 01:45 EDT, the first 01:45
    assert at is not None and at.start == utc(2026, 11, 1, 5, 30)
    # the day after it hands off at 01:30 EST, 25 hours later
    assert at.end == utc(2026, 11, 2, 6, 30)


def test_restricted_layer_on_top_of_a_round_the_clock_layer() -> None:
    base = Layer("base", ("night",), datetime(2026, 1, 5, 0, 0), timedelta(days=7))
    office = Layer(
        "office",
        ("ann", "bob"),
        datetime(2026, 1, 5, 9, 0),
        timedelta(days=7),
        (Window(WEEKDAYS, time(9), time(18)),),
    )
    s = sched(LONDON, base, office)
    # Monday 2026-01-12, London is on UTC in winter
    got = [
        (x.person, x.start, x.end, x.layer)
        for x in shifts(s, [], utc(2026, 1, 12), utc(2026, 1, 13))
    ]
    assert got == [
        ("night", utc(2026, 1, 12), utc(2026, 1, 12, 9), "base"),
        ("bob", utc(2026, 1, 12, 9), utc(2026, 1, 12, 18), "office"),
        ("night", utc(2026, 1, 12, 18), utc(2026, 1, 13), "base"),
    ]
    saturday = on_call(s, [], utc(2026, 1, 17, 12))
    assert saturday is not None and saturday.person == "night"
    # in summer the window is still 09-18 local (08-17 UTC)
    summer = layer_shifts(s, office, utc(2026, 6, 1), utc(2026, 6, 2))
    assert [(x.start, x.end) for x in summer] == [(utc(2026, 6, 1, 8), utc(2026, 6, 1, 17))]


def test_window_past_midnight() -> None:
    nights = Layer(
        "nights",
        ("owl",),
        datetime(2026, 1, 5, 0, 0),
        timedelta(days=7),
        (Window(frozenset({4}), time(22), time(6)),),  # Friday 22:00 to Saturday 06:00
    )
    s = sched(LONDON, nights)
    got = [(x.start, x.end) for x in shifts(s, [], utc(2026, 1, 5), utc(2026, 1, 12))]
    assert got == [(utc(2026, 1, 9, 22), utc(2026, 1, 10, 6))]


def test_overrides_win_and_the_latest_of_overlapping_ones_wins() -> None:
    s = sched(LONDON, daily(("ann",), datetime(2026, 1, 1, 9, 0)))
    overrides = [
        Override("bob", utc(2026, 1, 10, 12), utc(2026, 1, 10, 18), id=1),
        Override("cat", utc(2026, 1, 10, 15), utc(2026, 1, 10, 16), id=2),
    ]
    got = [
        (x.person, x.start, x.end, x.layer)
        for x in shifts(s, overrides, utc(2026, 1, 10, 10), utc(2026, 1, 10, 20))
    ]
    assert got == [
        ("ann", utc(2026, 1, 10, 10), utc(2026, 1, 10, 12), "base"),
        ("bob", utc(2026, 1, 10, 12), utc(2026, 1, 10, 15), "override"),
        ("cat", utc(2026, 1, 10, 15), utc(2026, 1, 10, 16), "override"),
        ("bob", utc(2026, 1, 10, 16), utc(2026, 1, 10, 18), "override"),
        ("ann", utc(2026, 1, 10, 18), utc(2026, 1, 10, 20), "base"),
    ]


def test_nobody_before_the_first_turn_and_next_shifts_from_there() -> None:
    s = sched(NY, daily(("ann", "bob"), datetime(2026, 3, 1, 9, 0)))
    assert on_call(s, [], utc(2026, 2, 28)) is None
    upcoming = next_shifts(s, [], utc(2026, 2, 28), count=3)
    assert [(x.person, x.start) for x in upcoming] == [
        ("ann", utc(2026, 3, 1, 14)),
        ("bob", utc(2026, 3, 2, 14)),
        ("ann", utc(2026, 3, 3, 14)),
    ]
    # the current shift comes first, whole
    now = next_shifts(s, [], utc(2026, 3, 2, 20), count=2)
    assert [(x.person, x.start, x.end) for x in now] == [
        ("bob", utc(2026, 3, 2, 14), utc(2026, 3, 3, 14)),
        ("ann", utc(2026, 3, 3, 14), utc(2026, 3, 4, 14)),
    ]


def test_shifts_are_contiguous_and_cover_the_window_for_a_full_rotation() -> None:
    s = sched(BERLIN, daily(("a", "b", "c"), datetime(2026, 3, 1, 2, 30)))
    got = shifts(s, [], utc(2026, 3, 1, 12), utc(2026, 11, 30))
    assert got[0].start == utc(2026, 3, 1, 12) and got[-1].end == utc(2026, 11, 30)
    for one, two in itertools.pairwise(got):
        assert one.end == two.start and one.person != two.person


def test_person_shifts_across_schedules() -> None:
    a = sched(LONDON, daily(("ann", "bob"), datetime(2026, 1, 1, 9, 0)), name="a")
    b = sched(NY, daily(("bob", "ann"), datetime(2026, 1, 1, 9, 0)), name="b")
    got = person_shifts([a, b], {}, "ann", utc(2026, 1, 1), utc(2026, 1, 3))
    assert [(x.schedule, x.start, x.end) for x in got] == [
        ("a", utc(2026, 1, 1, 9), utc(2026, 1, 2, 9)),
        ("b", utc(2026, 1, 2, 14), utc(2026, 1, 3)),
    ]
    assert all(x.person == "ann" for x in got)

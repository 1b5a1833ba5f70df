"""Who is on call: pure schedule math over plain values, DST-safe.

A schedule is a stack of layers; each layer rotates its members in turns (daily, weekly or
every N hours) that hand off at a wall-clock time in the schedule's IANA zone, optionally
only inside restriction windows (``mon-fri 09:00-18:00``). The final schedule at an instant
is the topmost layer that has somebody then (later layers sit on top of earlier ones), and
an override sits on top of every layer.

Wall-clock rules, so a handoff stays at "09:00" all year:

- turns are counted in local time: turn k starts at ``start + k * length`` on the local
  clock, so a daily turn is 23 or 25 hours long on a transition day;
- a local time that does not exist (skipped when the clocks spring forward) happens at the
  moment the clocks jump, e.g. 02:30 on 2026-03-08 in America/New_York is 03:00 EDT;
- a local time that happens twice (the clocks fall back) means its first occurrence.

Every instant here is an aware UTC `datetime`; intervals are half-open ``[start, end)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """Local hours on some weekdays; `end` <= `start` runs past midnight into the next day
    (``22:00-06:00``). `days` are `date.weekday()` numbers of the day the window starts."""

    days: frozenset[int]
    start: time
    end: time  # time(0) with `end_of_day` means 24:00
    end_of_day: bool = False


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    members: tuple[str, ...]
    start: datetime  # naive local wall-clock time of the first handoff
    length: timedelta  # local wall-clock length of a turn: 1 day, 7 days or N hours
    restrictions: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    zone: ZoneInfo
    layers: tuple[Layer, ...]


@dataclass(frozen=True, slots=True)
class Override:
    person: str
    start: datetime
    end: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Shift:
    """Somebody on call on one schedule from `start` to `end` (UTC); `layer` is the layer
    name, or ``"override"``."""

    schedule: str
    person: str
    start: datetime
    end: datetime
    layer: str


# --- local time --------------------------------------------------------------------------


def local_gap(naive: datetime, zone: ZoneInfo) -> bool:
    """True when the wall-clock time `naive` never happens in `zone` (skipped forward)."""
    there = naive.replace(tzinfo=zone, fold=0)
    back = there.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return back != naive


def resolve(naive: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of the wall-clock time `naive` in `zone` (see the module rules for
    skipped and repeated times). Monotone: a later wall-clock time never maps earlier."""
    if not local_gap(naive, zone):
        return naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    # inside a gap: the first instant whose local time is at or after `naive`, which is
    # the jump itself; found by bisection between the two readings of the gap time
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    lo, hi = min(lo, hi), max(lo, hi)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0) if hi.microsecond else hi


def local(instant: datetime, zone: ZoneInfo) -> datetime:
    """Naive wall-clock time of `instant` in `zone`."""
    return instant.astimezone(zone).replace(tzinfo=None)


def describe_gap(naive: datetime, zone: ZoneInfo) -> str:
    jump = resolve(naive, zone).astimezone(zone)
    return (
        f"{naive:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks skip forward to "
        f"{jump:%H:%M} that day); pick another start day or handoff time"
    )


# --- one layer ----------------------------------------------------------------------------


def _turn_start(layer: Layer, zone: ZoneInfo, k: int) -> datetime:
    return resolve(layer.start + k * layer.length, zone)


def turn_index(layer: Layer, zone: ZoneInfo, at: datetime) -> int:
    """The turn that contains `at` (negative before the layer starts)."""
    k = (local(at, zone) - layer.start) // layer.length
    while k > -(10**6) and _turn_start(layer, zone, k) > at:
        k -= 1
    while _turn_start(layer, zone, k + 1) <= at:
        k += 1
    return k


def _windows(
    restrictions: Sequence[Window], zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The restriction windows as UTC intervals meeting ``[start, end)``, merged."""
    first = local(start, zone).date() - timedelta(days=1)
    last = local(end, zone).date()
    out: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        for w in restrictions:
            if day.weekday() not in w.days:
                continue
            a = datetime.combine(day, w.start)
            if w.end_of_day or w.end <= w.start:
                b = datetime.combine(day + timedelta(days=1), w.end)
            else:
                b = datetime.combine(day, w.end)
            ua, ub = resolve(a, zone), resolve(b, zone)
            if ua < end and ub > start and ua < ub:
                out.append((max(ua, start), min(ub, end)))
        day += timedelta(days=1)
    out.sort()
    merged: list[tuple[datetime, datetime]] = []
    for a, b in out:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def layer_shifts(schedule: Schedule, layer: Layer, start: datetime, end: datetime) -> list[Shift]:
    """The layer's own shifts meeting ``[start, end)``, clipped to it."""
    if not layer.members or end <= start:
        return []
    zone = schedule.zone
    k = max(turn_index(layer, zone, start), 0)
    out: list[Shift] = []
    while True:
        a, b = _turn_start(layer, zone, k), _turn_start(layer, zone, k + 1)
        if a >= end:
            break
        a, b = max(a, start), min(b, end)
        if a < b:
            person = layer.members[k % len(layer.members)]
            parts = _windows(layer.restrictions, zone, a, b) if layer.restrictions else [(a, b)]
            out.extend(Shift(schedule.name, person, pa, pb, layer.name) for pa, pb in parts)
        k += 1
    return out


# --- the final schedule -------------------------------------------------------------------


def shifts(
    schedule: Schedule, overrides: Iterable[Override], start: datetime, end: datetime
) -> list[Shift]:
    """Who is on call on `schedule` from `start` to `end`: consecutive intervals, each with
    one person, gaps where nobody is. Higher layers win, overrides win over all layers."""
    if end <= start:
        return []
    stack: list[list[Shift]] = [layer_shifts(schedule, ly, start, end) for ly in schedule.layers]
    stack.append(
        [
            Shift(schedule.name, o.person, max(o.start, start), min(o.end, end), "override")
            for o in sorted(overrides, key=lambda o: (o.start, o.id or 0))
            if o.start < end and o.end > start and o.start < o.end
        ]
    )
    cuts = sorted({start, end} | {t for level in stack for s in level for t in (s.start, s.end)})
    out: list[Shift] = []
    for a, b in itertools.pairwise(cuts):
        top = _top(stack, a)
        if top is None:
            continue
        if out and out[-1].end == a and (out[-1].person, out[-1].layer) == (top.person, top.layer):
            out[-1] = Shift(schedule.name, top.person, out[-1].start, b, top.layer)
        else:
            out.append(Shift(schedule.name, top.person, a, b, top.layer))
    return out


def _top(stack: Sequence[Sequence[Shift]], at: datetime) -> Shift | None:
    for level in reversed(stack):
        # the latest-starting override wins where two overlap
        found = [s for s in level if s.start <= at < s.end]
        if found:
            return found[-1]
    return None


def on_call(schedule: Schedule, overrides: Iterable[Override], at: datetime) -> Shift | None:
    """The shift covering `at`, with its whole extent (not clipped to `at`)."""
    horizon = timedelta(days=35)
    around = shifts(schedule, overrides, at - horizon, at + horizon)
    for s in around:
        if s.start <= at < s.end:
            return s
    return None


def next_shifts(
    schedule: Schedule,
    overrides: Iterable[Override],
    at: datetime,
    count: int = 5,
    horizon: timedelta = timedelta(days=60),
) -> list[Shift]:
    """The shift covering `at` (whole) and the ones after it, at most `count` in all,
    looking no further than `horizon` ahead."""
    overrides = list(overrides)
    current = on_call(schedule, overrides, at)
    begin = current.start if current else at
    return shifts(schedule, overrides, begin, at + horizon)[:count]


def person_shifts(
    schedules: Iterable[Schedule],
    overrides: dict[str, list[Override]],
    person: str,
    start: datetime,
    end: datetime,
) -> list[Shift]:
    """`person`'s shifts across every schedule, in time order."""
    out = [
        s
        for sch in schedules
        for s in shifts(sch, overrides.get(sch.name, []), start, end)
        if s.person == person
    ]
    return sorted(out, key=lambda s: (s.start, s.schedule))

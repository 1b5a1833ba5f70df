"""Pure decisions of a launch: its state, SLO arithmetic, burn-rate alerts, exit criteria
and the MTTx statistics of its reports. Plain data in, plain data out; no I/O.

SLO arithmetic follows the SRE workbook: the SLI is the share of good calls, the error
budget is ``(1 - target) * calls``, the burn rate is ``error rate / (1 - target)``, and an
alert fires when both windows of a pair burn faster than its factor::

    >>> rate = burn_rate(total=1000, bad=20, target=99.0)   # 2 % errors, 1 % allowed
    >>> rate
    2.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from hypercare.launch.config import (
    MAX_SLO_WINDOW,
    Criterion,
    LaunchConfig,
    SloConfig,
)
from hypercare.triage.rules import OPEN, Status

# --- state ---------------------------------------------------------------------------------


class LaunchState(StrEnum):
    planned = "planned"
    active = "active"
    exit_review = "exit_review"
    extended = "extended"
    exited = "exited"


L = LaunchState
TRANSITIONS: Mapping[LaunchState, frozenset[LaunchState]] = {
    L.planned: frozenset({L.active}),
    L.active: frozenset({L.exit_review, L.extended}),
    L.extended: frozenset({L.exit_review, L.extended}),
    L.exit_review: frozenset({L.exited, L.extended, L.active}),
    L.exited: frozenset(),
}


def effective_state(
    stored: str | None, start: datetime, end: datetime, now: datetime
) -> LaunchState:
    """The stored state once someone set one; before that the calendar decides: planned
    before the start, active until the planned end, then up for exit review."""
    if stored is not None:
        return LaunchState(stored)
    if now < start:
        return L.planned
    if now < end:
        return L.active
    return L.exit_review


def transition_error(
    current: LaunchState, to: LaunchState, *, new_end: datetime | None, start: datetime
) -> str | None:
    """Why `current` → `to` is refused, or None when it is allowed."""
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (the launch is over)"
        return f"the launch is {current.value} and cannot become {to.value} (allowed: {allowed})"
    if to is L.extended and (new_end is None or new_end <= start):
        return "extending a launch needs a new end after its start (give 'end')"
    return None


# --- scope ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What belongs to a launch: calls of `routes`, issues of those routes or `components`
    created between `start` and `end`. Empty routes and components: everything."""

    start: datetime
    end: datetime
    routes: frozenset[str]
    components: frozenset[str]

    @property
    def everything(self) -> bool:
        return not self.routes and not self.components

    def holds(self, *, at: datetime, route: str | None, component: str | None) -> bool:
        if not self.start <= at < self.end:
            return False
        if self.everything:
            return True
        return (route is not None and route in self.routes) or (
            component is not None and component in self.components
        )


def scope_of(
    launch: LaunchConfig, end: datetime, route_components: Mapping[str, str | None]
) -> Scope:
    """Routes named or tagged with a named component, and components named or of a named
    route (so an issue filed against the component of a launch route belongs to it)."""
    comps = set(launch.components)
    routes = set(launch.routes)
    routes |= {r for r, c in route_components.items() if c is not None and c in comps}
    comps |= {c for r, c in route_components.items() if r in launch.routes and c is not None}
    return Scope(launch.start, end, frozenset(routes), frozenset(comps))


def slo_routes(slo: SloConfig, route_components: Mapping[str, str | None]) -> list[str]:
    if slo.route is not None:
        return [slo.route]
    return sorted(r for r, c in route_components.items() if c == slo.component)


def slo_window(slo: SloConfig, start: datetime, end: datetime) -> timedelta:
    """The rolling window: as configured, else the launch length, at most 28 d."""
    if slo.window is not None:
        return slo.window
    return min(end - start, MAX_SLO_WINDOW)


# --- SLO arithmetic -------------------------------------------------------------------------


class Point(NamedTuple):
    """Good/bad calls of one SLO in one bucket (a minute or an hour)."""

    start: int  # Unix seconds
    seconds: int
    total: int
    bad: int


def window_totals(points: Iterable[Point], start: float, end: float) -> tuple[int, int]:
    """Calls and bad calls of the buckets starting in [start, end)."""
    total = bad = 0
    for p in points:
        if start <= p.start < end:
            total += p.total
            bad += p.bad
    return total, bad


def burn_rate(*, total: int, bad: int, target: float) -> float:
    """How many times faster than allowed the budget burns (1.0: exactly used up at the end
    of the window); 0 with no calls."""
    if total <= 0:
        return 0.0
    allowed = 1 - target / 100
    return round((bad / total) / allowed, 4)


@dataclass(frozen=True, slots=True)
class SloStatus:
    name: str
    kind: str
    target: float
    window_seconds: float
    total: int
    bad: int

    @property
    def sli(self) -> float | None:
        """Percent of good calls; None with no calls."""
        return None if self.total == 0 else round(100 * (self.total - self.bad) / self.total, 4)

    @property
    def met(self) -> bool:
        sli = self.sli
        return sli is None or sli >= self.target

    @property
    def budget_remaining(self) -> float:
        """Share of the error budget left, from 1 (untouched) down (negative: overspent)."""
        return budget_left(self.total, self.bad, self.target)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "window_seconds": self.window_seconds,
            "calls": self.total,
            "bad": self.bad,
            "sli": self.sli,
            "met": self.met,
            "budget_remaining": self.budget_remaining,
        }


def budget_left(total: int, bad: int, target: float) -> float:
    """Share of the error budget left after `bad` of `total` calls under `target` percent."""
    if total == 0:
        return 1.0
    allowed = total * (1 - target / 100)
    return round(1 - bad / allowed, 4) if allowed > 0 else 0.0


def slo_status(slo: SloConfig, points: Sequence[Point], *, now: float, window: float) -> SloStatus:
    total, bad = window_totals(points, now - window, now + 1)
    return SloStatus(slo.name, slo.kind, slo.target, window, total, bad)


def budget_series(
    points: Sequence[Point], *, target: float, start: float, step: int
) -> list[tuple[int, float]]:
    """Error budget remaining (share) at the end of each `step`, accumulated from `start`:
    what the SLO chart draws."""
    if not points:
        return []
    by_step: dict[int, list[int]] = {}
    for p in points:
        if p.start < start:
            continue
        at = int(start + (p.start - start) // step * step)
        slot = by_step.setdefault(at, [0, 0])
        slot[0] += p.total
        slot[1] += p.bad
    out: list[tuple[int, float]] = []
    total = bad = 0
    for at in sorted(by_step):
        total += by_step[at][0]
        bad += by_step[at][1]
        out.append((at + step, budget_left(total, bad, target)))
    return out


# --- burn-rate alerts -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BurnWindow:
    factor: float
    long: int  # seconds
    short: int
    action: str  # page | ticket
    severity: str  # the signal's severity: the priority table maps it to the matrix


# The SRE workbook's multiwindow, multi-burn-rate policy (for a 30-day budget: 2 % of it
# spent in 1 h, 5 % in 6 h, 10 % in 3 d)
BURN_POLICY: tuple[BurnWindow, ...] = (
    BurnWindow(14.4, 3600, 300, "page", "critical"),
    BurnWindow(6.0, 6 * 3600, 1800, "page", "high"),
    BurnWindow(1.0, 3 * 86400, 6 * 3600, "ticket", "warning"),
)
LONGEST_WINDOW = max(w.long for w in BURN_POLICY)


@dataclass(frozen=True, slots=True)
class BurnAlert:
    window: BurnWindow
    long_rate: float
    short_rate: float
    long_calls: tuple[int, int]  # (calls, bad)
    short_calls: tuple[int, int]

    def evidence(self) -> dict[str, Any]:
        w = self.window
        return {
            "factor": w.factor,
            "action": w.action,
            "long_window_seconds": w.long,
            "short_window_seconds": w.short,
            "long_burn_rate": self.long_rate,
            "short_burn_rate": self.short_rate,
            "long_calls": self.long_calls[0],
            "long_bad": self.long_calls[1],
            "short_calls": self.short_calls[0],
            "short_bad": self.short_calls[1],
        }


def burn_alert(
    points: Sequence[Point],
    *,
    target: float,
    now: float,
    policy: Sequence[BurnWindow] = BURN_POLICY,
    min_calls: int = 10,
) -> BurnAlert | None:
    """The most urgent window pair whose long and short windows both burn at least their
    factor (the short one makes the alert reset soon after the burn stops). None when none
    does, or the long window saw fewer than `min_calls` calls."""
    for w in policy:
        long_ = window_totals(points, now - w.long, now + 1)
        short = window_totals(points, now - w.short, now + 1)
        if long_[0] < min_calls or short[0] == 0:
            continue
        lr = burn_rate(total=long_[0], bad=long_[1], target=target)
        sr = burn_rate(total=short[0], bad=short[1], target=target)
        if lr >= w.factor and sr >= w.factor:
            return BurnAlert(w, lr, sr, long_, short)
    return None


def describe_burn(slo: SloConfig, alert: BurnAlert) -> str:
    w = alert.window
    return (
        f"SLO {slo.name} ({slo.kind} {slo.target}%) burning its error budget "
        f"{alert.long_rate:g}× over {_span(w.long)} and {alert.short_rate:g}× over "
        f"{_span(w.short)} (threshold {w.factor:g}×: {w.action})"
    )


def _span(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 60)}m"


# --- exit criteria ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssueFact:
    id: int
    title: str
    priority: str
    status: str
    created_at: datetime
    route: str | None
    component: str | None


@dataclass
class Facts:
    """What the exit criteria are evaluated on, loaded by the service."""

    now: datetime
    issues: list[IssueFact]  # the launch's issues (in scope)
    start: datetime | None = None  # the launch's start: no day before it is counted
    # SLO statuses over each look-back a slo_met criterion asks for (seconds → name → status)
    slo_over: dict[int, dict[str, SloStatus]] = field(default_factory=dict)
    # survey scores (source, at, score) of the longest window asked for
    scores: list[tuple[str, datetime, int]] = field(default_factory=list)
    # (route, metric, window seconds) → value (None: no data)
    metrics: dict[tuple[str, str, int], float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    kind: str
    label: str
    passed: bool
    summary: str
    evidence: dict[str, Any]
    links: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "passed": self.passed,
            "summary": self.summary,
            "evidence": self.evidence,
            "links": list(self.links),
        }


def _issue_links(issues: Iterable[IssueFact], limit: int = 20) -> tuple[str, ...]:
    return tuple(f"/issues/{i.id}" for i in list(issues)[:limit])


def daily_counts(created: Iterable[datetime], *, now: datetime, days: int) -> list[int]:
    """Issues created in each of the last `days` 24-hour periods ending `now`, oldest first."""
    counts = [0] * days
    for at in created:
        age = (now - at).total_seconds()
        if 0 <= age < days * 86400:
            counts[days - 1 - int(age // 86400)] += 1
    return counts


def slope(values: Sequence[float]) -> float:
    """Least-squares slope per step (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    mx = (n - 1) / 2
    my = sum(values) / n
    num = sum((i - mx) * (v - my) for i, v in enumerate(values))
    den = sum((i - mx) ** 2 for i in range(n))
    return round(num / den, 4)


def _nps(scores: Iterable[int]) -> tuple[float | None, int]:
    values = list(scores)
    if not values:
        return None, 0
    p = sum(1 for s in values if s >= 9)
    d = sum(1 for s in values if s <= 6)
    return round(100 * (p - d) / len(values), 2), len(values)


def _csat(scores: Iterable[int]) -> tuple[float | None, int]:
    values = list(scores)
    if not values:
        return None, 0
    return round(100 * sum(1 for s in values if s >= 4) / len(values), 2), len(values)


def evaluate(criterion: Criterion, facts: Facts) -> Result:
    """One criterion on the facts, with the numbers that decided it."""
    kind = criterion.kind
    now = facts.now
    if criterion.no_open is not None:
        wanted = set(criterion.no_open)
        open_ = [i for i in facts.issues if i.priority in wanted and Status(i.status) in OPEN]
        label = f"no open {'/'.join(criterion.no_open)} issue"
        return Result(
            kind,
            label,
            not open_,
            f"{len(open_)} open"
            + (": " + ", ".join(f"#{i.id}" for i in open_[:10]) if open_ else ""),
            {"open": [{"id": i.id, "priority": i.priority, "title": i.title} for i in open_[:50]]},
            _issue_links(open_),
        )
    if criterion.no_new is not None:
        c = criterion.no_new
        since = now - c.for_
        new = [i for i in facts.issues if i.priority in c.priority and i.created_at >= since]
        label = f"no new {'/'.join(c.priority)} for {_span(c.for_.total_seconds())}"
        last = max((i.created_at for i in facts.issues if i.priority in c.priority), default=None)
        return Result(
            kind,
            label,
            not new,
            f"{len(new)} since {since:%Y-%m-%d %H:%M} UTC"
            + (f"; last one {last:%Y-%m-%d %H:%M} UTC" if last else ""),
            {
                "since": since.isoformat(),
                "new": [{"id": i.id, "priority": i.priority, "title": i.title} for i in new[:50]],
                "last_created_at": last.isoformat() if last else None,
            },
            _issue_links(new),
        )
    if criterion.slo_met is not None:
        c2 = criterion.slo_met
        seconds = int(c2.for_.total_seconds())
        statuses = facts.slo_over.get(seconds, {})
        chosen = [s for n, s in statuses.items() if not c2.slos or n in c2.slos]
        missed = [s for s in chosen if not s.met]
        label = f"every SLO met for the last {_span(seconds)}"
        return Result(
            kind,
            label,
            not missed,
            f"{len(chosen) - len(missed)} of {len(chosen)} met"
            + (
                ": missed " + ", ".join(f"{s.name} ({s.sli}% < {s.target}%)" for s in missed)
                if missed
                else ""
            ),
            {"window_seconds": seconds, "slos": [s.as_dict() for s in chosen]},
            ("#slos",),
        )
    if criterion.tickets_per_day is not None:
        c3 = criterion.tickets_per_day
        days = c3.days
        if facts.start is not None:
            # only the launch's own days: a launch of two days has no week-long trend
            days = max(1, min(days, math.ceil((now - facts.start).total_seconds() / 86400)))
        counts = daily_counts((i.created_at for i in facts.issues), now=now, days=days)
        trend = slope(counts)
        today = counts[-1]
        judged = c3.trending == "down" and days >= 2
        ok = today <= c3.max and (not judged or trend <= 0)
        label = f"tickets per day ≤ {c3.max:g}" + (
            " and trending down" if c3.trending == "down" else ""
        )
        return Result(
            kind,
            label,
            ok,
            f"{today} in the last 24 h; daily over {days} days {counts}, slope {trend:+g}/day"
            + (" (too early to judge the trend)" if c3.trending == "down" and days < 2 else ""),
            {"daily": counts, "last_day": today, "slope_per_day": trend, "max": c3.max},
            ("/triage",),
        )
    if criterion.nps is not None or criterion.csat is not None:
        bound = criterion.nps or criterion.csat
        assert bound is not None  # one of them, by the branch
        source = "nps" if criterion.nps is not None else "csat"
        since = now - bound.window
        values = [s for src, at, s in facts.scores if src == source and at >= since]
        score, n = (_nps if source == "nps" else _csat)(values)
        enough = n >= bound.min_responses
        ok = enough and score is not None and score >= bound.min
        label = f"{source.upper()} ≥ {bound.min:g} over {_span(bound.window.total_seconds())}"
        summary = (
            f"{source.upper()} {score:g} from {n} responses"
            if score is not None
            else "no responses"
        )
        if not enough and score is not None:
            summary += f" (needs {bound.min_responses})"
        return Result(
            kind,
            label,
            ok,
            summary,
            {"score": score, "responses": n, "since": since.isoformat(), "min": bound.min},
            ("/feedback",),
        )
    m = criterion.metric
    assert m is not None  # the last kind
    key = (m.route, m.metric, int(m.window.total_seconds()))
    value = facts.metrics.get(key)
    ok = (
        value is not None
        and (m.max is None or value <= m.max)
        and (m.min is None or value >= m.min)
    )
    bounds = " and ".join(
        b
        for b in (
            f"≥ {m.min:g}" if m.min is not None else "",
            f"≤ {m.max:g}" if m.max is not None else "",
        )
        if b
    )
    label = f"{m.route} {m.metric} {bounds} over {_span(m.window.total_seconds())}"
    return Result(
        kind,
        label,
        ok,
        f"{m.metric} = {value:g}" if value is not None else "no calls in the window",
        {
            "route": m.route,
            "metric": m.metric,
            "value": value,
            "min": m.min,
            "max": m.max,
            "window_seconds": key[2],
        },
        (f"/apis/{m.route}",),
    )


@dataclass(frozen=True, slots=True)
class Scorecard:
    launch: str
    state: str
    at: datetime
    results: tuple[Result, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def passing(self) -> int:
        return sum(1 for r in self.results if r.passed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "launch": self.launch,
            "state": self.state,
            "at": self.at.isoformat(),
            "passed": self.passed,
            "passing": self.passing,
            "criteria": len(self.results),
            "results": [r.as_dict() for r in self.results],
        }


def scorecard(launch: LaunchConfig, state: str, facts: Facts) -> Scorecard:
    return Scorecard(
        launch.name, state, facts.now, tuple(evaluate(c, facts) for c in launch.exit_criteria)
    )


def render_text(card: Scorecard) -> str:
    """The scorecard as `hypercare launch exit-check` prints it."""
    head = "READY TO EXIT" if card.passed else "NOT READY"
    lines = [
        f"{card.launch} ({card.state}) at {card.at:%Y-%m-%d %H:%M} UTC: {head} "
        f"({card.passing}/{len(card.results)} criteria pass)"
    ]
    for r in card.results:
        lines.append(f"  [{'PASS' if r.passed else 'FAIL'}] {r.label}: {r.summary}")
    if not card.results:
        lines.append("  (no exit criteria declared: add exit_criteria to the launch)")
    return "\n".join(lines)


# --- report statistics -----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class TimeStats:
    count: int
    median: float | None
    p90: float | None


def time_stats(values: Iterable[float | None]) -> TimeStats:
    known = [v for v in values if v is not None]
    return TimeStats(len(known), percentile(known, 0.5), percentile(known, 0.9))

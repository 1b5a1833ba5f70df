"""Pure decisions of the status page: component state from live numbers, hysteresis,
overrides and maintenance, the overall indicator, uptime per day, templates and the rate
limit. Plain data in, plain data out; no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from hypercare.detection.rules import WindowStats


class ComponentStatus(StrEnum):
    """Statuspage v2 component statuses, best first (the order is the severity)."""

    operational = "operational"
    under_maintenance = "under_maintenance"
    degraded_performance = "degraded_performance"
    partial_outage = "partial_outage"
    major_outage = "major_outage"


AUTOMATIC = (
    ComponentStatus.operational,
    ComponentStatus.degraded_performance,
    ComponentStatus.partial_outage,
    ComponentStatus.major_outage,
)
_RANK = {s: i for i, s in enumerate(AUTOMATIC)}

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
IMPACTS = ("none", "minor", "major", "critical")
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "verifying", "completed")

LABELS = {
    ComponentStatus.operational: "Operational",
    ComponentStatus.degraded_performance: "Degraded performance",
    ComponentStatus.partial_outage: "Partial outage",
    ComponentStatus.major_outage: "Major outage",
    ComponentStatus.under_maintenance: "Under maintenance",
}


def rank(status: ComponentStatus) -> int:
    """Severity of an automatic state (maintenance counts as operational)."""
    return _RANK.get(status, 0)


# --- state from live numbers -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Level:
    """A level is reached when any one of its set conditions holds."""

    error_rate: float | None = None
    latency_ratio: float | None = None  # p95 over the route's baseline p95
    p95_ms: float | None = None
    no_healthy_target: bool = False


@dataclass(frozen=True, slots=True)
class Thresholds:
    degraded: Level
    partial: Level
    major: Level
    window_seconds: float = 10.0
    min_requests: int = 10


@dataclass(frozen=True, slots=True)
class Reading:
    """One component's numbers over the evaluation window (its routes summed)."""

    requests: int = 0
    failed: int = 0
    p95_ms: float | None = None
    baseline_p95_ms: float | None = None
    no_healthy_target: bool = False

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.requests if self.requests else None


def reading(stats: Sequence[WindowStats], baselines: Mapping[str, float] | None = None) -> Reading:
    """Sum the routes of a component. Failed calls are counted as detection counts them
    (5xx answers and calls that failed in the gateway: one `outcome_of` classification)."""
    requests = sum(s.requests for s in stats)
    failed = sum(s.status_5xx + s.gateway_errors for s in stats)
    worst_ratio: tuple[float, float, float] | None = None
    p95s = [s.p95 for s in stats if s.p95 is not None]
    for s in stats:
        base = (baselines or {}).get(s.route)
        if s.p95 is not None and base:
            ratio = s.p95 / base
            if worst_ratio is None or ratio > worst_ratio[0]:
                worst_ratio = (ratio, s.p95, base)
    return Reading(
        requests=requests,
        failed=failed,
        p95_ms=worst_ratio[1] if worst_ratio else (max(p95s) if p95s else None),
        baseline_p95_ms=worst_ratio[2] if worst_ratio else None,
        no_healthy_target=any(s.healthy_targets == 0 for s in stats),
    )


def _reached(level: Level, r: Reading, min_requests: int) -> str | None:
    """Why `r` reaches `level`, or None."""
    if level.no_healthy_target and r.no_healthy_target:
        return "no healthy target"
    if r.requests < min_requests:
        return None
    rate = r.error_rate
    if level.error_rate is not None and rate is not None and rate >= level.error_rate:
        return f"error rate {rate:.0%} ≥ {level.error_rate:.0%}"
    if level.p95_ms is not None and r.p95_ms is not None and r.p95_ms >= level.p95_ms:
        return f"p95 {r.p95_ms:.0f} ms ≥ {level.p95_ms:.0f} ms"
    if (
        level.latency_ratio is not None
        and r.p95_ms is not None
        and r.baseline_p95_ms
        and r.p95_ms >= level.latency_ratio * r.baseline_p95_ms
    ):
        return (
            f"p95 {r.p95_ms:.0f} ms is {r.p95_ms / r.baseline_p95_ms:.1f}× "
            f"the baseline {r.baseline_p95_ms:.0f} ms"
        )
    return None


def classify(r: Reading, t: Thresholds) -> tuple[ComponentStatus, str]:
    """The state the numbers call for right now, and the reason in words."""
    for status, level in (
        (ComponentStatus.major_outage, t.major),
        (ComponentStatus.partial_outage, t.partial),
        (ComponentStatus.degraded_performance, t.degraded),
    ):
        why = _reached(level, r, t.min_requests)
        if why:
            return status, why
    if r.requests < t.min_requests:
        return ComponentStatus.operational, f"{r.requests} requests in the window"
    rate = r.error_rate or 0.0
    return ComponentStatus.operational, f"error rate {rate:.1%} over {r.requests} requests"


@dataclass(frozen=True, slots=True)
class Tracked:
    """A component's automatic state, and the state waiting to replace it since when."""

    status: ComponentStatus = ComponentStatus.operational
    since: float = 0.0
    pending: ComponentStatus | None = None
    pending_since: float = 0.0
    # while worse readings come in: for each state worse than `status` up to the reading,
    # since when every reading has been at least that bad
    worse_since: tuple[tuple[ComponentStatus, float], ...] = ()


def step(
    current: Tracked, observed: ComponentStatus, now: float, raise_after: float, clear_after: float
) -> Tracked:
    """Hysteresis: a worse state is taken once the readings have been at least that bad for
    `raise_after`; a better one once it has held for `clear_after`. A flapping route does
    not flap the page.

    A fault that grows (degraded, then partial, then major as failed calls fill the window)
    does not restart the wait at each level: degraded is taken `raise_after` after the
    first bad reading, major `raise_after` after the first major one."""
    if observed == current.status:
        return Tracked(current.status, current.since)
    if rank(observed) > rank(current.status):
        held = dict(current.worse_since)
        low = rank(current.status)
        worse = [(s, held.get(s, now)) for s in AUTOMATIC if low < rank(s) <= rank(observed)]
        for i in range(len(worse) - 1, -1, -1):
            if now - worse[i][1] >= raise_after:
                above = tuple(worse[i + 1 :])
                if not above:
                    return Tracked(worse[i][0], now)
                return Tracked(worse[i][0], now, observed, above[-1][1], above)
        return Tracked(current.status, current.since, observed, worse[-1][1], tuple(worse))
    if observed != current.pending:
        current = Tracked(current.status, current.since, observed, now)
    if now - current.pending_since >= clear_after:
        return Tracked(observed, now)
    return current


@dataclass(frozen=True, slots=True)
class Window:
    """A maintenance window or a manual override: `status` holds in [start, end)."""

    status: ComponentStatus
    start: float
    end: float | None  # None: until lifted


def effective(
    automatic: ComponentStatus, now: float, overrides: Iterable[Window], windows: Iterable[Window]
) -> tuple[ComponentStatus, str]:
    """What the page shows: a manual override wins, then maintenance, then traffic."""
    for o in overrides:
        if o.start <= now and (o.end is None or now < o.end):
            return o.status, "override"
    for w in windows:
        if w.start <= now and (w.end is None or now < w.end):
            return ComponentStatus.under_maintenance, "maintenance"
    return automatic, "traffic"


def routes_of(
    routes: Sequence[str], tags: Mapping[str, str], known: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """A component's routes: those it names, and every known route carrying all its tags."""
    out = list(dict.fromkeys(routes))
    if tags:
        for name, rtags in known.items():
            if name not in out and all(rtags.get(k) == v for k, v in tags.items()):
                out.append(name)
    return out


# --- the page's overall state ------------------------------------------------------------

_INDICATOR = {
    ComponentStatus.operational: "none",
    ComponentStatus.under_maintenance: "none",
    ComponentStatus.degraded_performance: "minor",
    ComponentStatus.partial_outage: "major",
    ComponentStatus.major_outage: "critical",
}
_DESCRIPTION = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}


def indicator(statuses: Iterable[ComponentStatus], impacts: Iterable[str] = ()) -> tuple[str, str]:
    """Statuspage's `status.indicator` and `description`: the worst component, or the
    worst impact of an unresolved incident."""
    worst = 0
    listed = list(statuses)
    for s in listed:
        worst = max(worst, IMPACTS.index(_INDICATOR[s]))
    for i in impacts:
        worst = max(worst, IMPACTS.index(i) if i in IMPACTS else 0)
    name = IMPACTS[worst]
    if name == "none" and ComponentStatus.under_maintenance in listed:
        return name, "Service Under Maintenance"
    return name, _DESCRIPTION[name]


def impact_of(statuses: Iterable[ComponentStatus]) -> str:
    """The impact a new incident gets from the states of the components it affects."""
    return max((_INDICATOR[s] for s in statuses), key=IMPACTS.index, default="none")


def incident_status_from(status: ComponentStatus) -> str:
    return "investigating" if status is not ComponentStatus.operational else "resolved"


def scenario_for(status: ComponentStatus) -> str:
    """The template a suggested incident starts from."""
    if status in (ComponentStatus.major_outage, ComponentStatus.partial_outage):
        return "outage"
    return "degradation"


# --- uptime ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayUptime:
    day: str  # YYYY-MM-DD (UTC)
    requests: int
    failed: int

    @property
    def ratio(self) -> float | None:
        """Share of requests that did not fail; None on a day without traffic."""
        return None if not self.requests else 1 - self.failed / self.requests


UPTIME_DEFINITION = (
    "Uptime of a day is the share of that day's requests to the component's routes that "
    "did not fail (not answered 5xx, not failed in the gateway), measured at the gateway. "
    "Days without traffic are shown as no data."
)


def uptime_days(rows: Iterable[tuple[int, int, int]], first_day: int, days: int) -> list[DayUptime]:
    """Per-day uptime from minute rollups `(bucket_seconds, requests, failed)`; `first_day`
    is the Unix second of the first UTC midnight, and every one of `days` days is listed."""
    req = [0] * days
    bad = [0] * days
    for bucket, r, f in rows:
        i = (bucket - first_day) // 86400
        if 0 <= i < days:
            req[i] += r
            bad[i] += f
    out = []
    for i in range(days):
        day = datetime.fromtimestamp(first_day + i * 86400, UTC).strftime("%Y-%m-%d")
        out.append(DayUptime(day, req[i], bad[i]))
    return out


def overall_uptime(days: Sequence[DayUptime]) -> float | None:
    total = sum(d.requests for d in days)
    return None if not total else 1 - sum(d.failed for d in days) / total


def bar_class(ratio: float | None) -> str:
    if ratio is None:
        return "none"
    if ratio >= 0.999:
        return "ok"
    if ratio >= 0.99:
        return "minor"
    if ratio >= 0.95:
        return "major"
    return "critical"


# --- templates ---------------------------------------------------------------------------

SCENARIOS = (
    "degradation",
    "outage",
    "identified",
    "monitoring",
    "resolved",
    "maintenance_start",
    "maintenance_end",
)
VARIABLES = (
    "component",
    "components",
    "start_time",
    "impact",
    "workaround",
    "next_update_time",
    "page_name",
    "status",
)
SAMPLE_VARIABLES: dict[str, Any] = {
    "component": "Payments",
    "components": ["Payments"],
    "start_time": "2026-01-01 12:00 UTC",
    "impact": "major",
    "workaround": "retry the payment in a few minutes",
    "next_update_time": "2026-01-01 12:30 UTC",
    "page_name": "Service status",
    "status": "major_outage",
}
TEMPLATE_DEFAULTS = {
    "degradation": (
        "We are seeing degraded performance on {{ component }} since {{ start_time }}. "
        "Some requests may be slow or fail. We are investigating"
        "{% if next_update_time %} and will post an update by {{ next_update_time }}"
        "{% endif %}."
    ),
    "outage": (
        "{{ component }} is unavailable for many users since {{ start_time }}. "
        "We are investigating"
        "{% if workaround %}; in the meantime: {{ workaround }}{% endif %}."
        "{% if next_update_time %} Next update by {{ next_update_time }}.{% endif %}"
    ),
    "identified": (
        "We have identified the cause of the problem with {{ component }} and are working "
        "on a fix.{% if next_update_time %} Next update by {{ next_update_time }}.{% endif %}"
    ),
    "monitoring": ("A fix for {{ component }} is in place and we are monitoring the results."),
    "resolved": ("The problem with {{ component }} is resolved. Thank you for your patience."),
    "maintenance_start": ("Scheduled maintenance of {{ component }} has started."),
    "maintenance_end": ("Scheduled maintenance of {{ component }} is complete."),
}
MAX_TEMPLATE_CHARS = 5000


class TemplateError(ValueError):
    """A template that does not parse or names an unknown variable; `line` is 1-based."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


_ENV = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


def check_template(text: str, variables: Sequence[str] = VARIABLES) -> None:
    """Refuse a syntax error or an unknown variable (not one of `variables`), naming the
    line."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"a template is at most {MAX_TEMPLATE_CHARS} characters", None)
    try:
        tree = _ENV.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "syntax error", exc.lineno) from None
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for n in tree.find_all(nodes.Name):
        if n.ctx == "load" and n.name not in variables and n.name not in stored:
            raise TemplateError(
                f"unknown variable {n.name!r} (known: {', '.join(variables)})", n.lineno
            )


def render_template(
    text: str, variables: Mapping[str, Any], known: Sequence[str] = VARIABLES
) -> str:
    """Render a checked template; missing variables are empty, never an error page."""
    check_template(text, known)
    values = {k: variables.get(k, "") for k in known}
    try:
        return _ENV.from_string(text).render(values).strip()
    except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
        raise TemplateError(str(exc), None) from None


# --- serving -----------------------------------------------------------------------------


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag in tags


class TokenBucket:
    """Per-client token buckets (rate per second, burst); bounded number of clients."""

    def __init__(self, per_minute: int, max_keys: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, per_minute))
        self.max_keys = max_keys
        self._state: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, now: float) -> float | None:
        """None when allowed; otherwise seconds until the next request would be."""
        tokens, last = self._state.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._state[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if key not in self._state and len(self._state) >= self.max_keys:
            # forget the fullest buckets first: they are the idle clients
            for k in [k for k, (t, _) in self._state.items() if t >= self.burst - 1][:1000]:
                del self._state[k]
            if len(self._state) >= self.max_keys:
                self._state.clear()
        self._state[key] = (tokens - 1.0, now)
        return None


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or hashlib.blake2b(name.encode(), digest_size=4).hexdigest()


def reminder_due(
    last_update_at: float, priority: str | None, reminders: Mapping[str, float], now: float
) -> bool:
    """A public incident needs an update: none posted for the priority's interval."""
    every = reminders.get(priority or "")
    return every is not None and every > 0 and now - last_update_at >= every

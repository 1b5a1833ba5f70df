"""Pure decisions of post-incident reviews and runbooks: the impact window, blast radius,
lead times and MTTx of an incident, the review's lifecycle, its Markdown export, which
runbooks match an issue, and safe Markdown rendering. No I/O.

Times are Unix seconds (floats) here, as telemetry stores them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from markdown_it import MarkdownIt

from hypercare.errors import InvalidTransition
from hypercare.gateway.records import outcome_of
from hypercare.triage.rules import mttx


class ReviewState(StrEnum):
    draft = "draft"
    in_review = "in_review"
    published = "published"


TOP = 20  # consumers and routes listed by name in a blast radius; the rest are counted


class Call(NamedTuple):
    """The part of a stored call a review reads."""

    ts: float
    route: str
    consumer: str
    status: int
    error: str


def failed(call: Call) -> bool:
    """The one classification of a failing call (`gateway.records.outcome_of`)."""
    return outcome_of(call.status, call.error).failed


class Bucket(NamedTuple):
    """Failing calls of one second, route, consumer and status (or error kind)."""

    second: int
    route: str
    consumer: str
    kind: str


Tally = Mapping[Bucket, int]


def tally(calls: Iterable[Call], into: Counter[Bucket] | None = None) -> Counter[Bucket]:
    """Count the failing calls among `calls` per `Bucket`: what a review needs of them, in
    memory that grows with the distinct buckets, not with the calls (an hour-long outage at
    thousands of calls a second is a few thousand seconds)."""
    out = Counter[Bucket]() if into is None else into
    for call in calls:
        if failed(call):
            kind = call.error or str(call.status)
            out[Bucket(int(call.ts), call.route, call.consumer or "anonymous", kind)] += 1
    return out


def impact_window(
    failures: Sequence[float], *, anchor: float, until: float, gap: float
) -> tuple[float, float] | None:
    """The first and last failing call of the incident.

    `failures` are the times of failing calls (sorted), `anchor` when the incident was first
    known (its first signal, or the issue's impact start), `until` its resolution. Failures
    closer than `gap` to each other form one run; the window starts with the run that
    reaches `anchor` (or the first run after it) and ends with the last failure up to
    `until`, so an unrelated failure an hour before does not stretch it."""
    times = [t for t in failures if t <= until]
    if not times:
        return None
    runs: list[tuple[float, float]] = []
    start = prev = times[0]
    for t in times[1:]:
        if t - prev > gap:
            runs.append((start, prev))
            start = t
        prev = t
    runs.append((start, prev))
    for run_start, _ in (r for r in runs if r[1] >= anchor - gap):
        return run_start, times[-1]
    return None


@dataclass(frozen=True, slots=True)
class BlastRadius:
    failed_calls: int
    consumers: list[tuple[str, int]]  # the TOP most affected, most first
    consumer_count: int
    routes: list[tuple[str, int]]
    route_count: int
    statuses: list[tuple[str, int]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "failed_calls": self.failed_calls,
            "consumers": [{"consumer": c, "failed_calls": n} for c, n in self.consumers],
            "consumer_count": self.consumer_count,
            "routes": [{"route": r, "failed_calls": n} for r, n in self.routes],
            "route_count": self.route_count,
            "statuses": [{"status": s, "failed_calls": n} for s, n in self.statuses],
        }


def blast_radius(failures: Tally, window: tuple[float, float]) -> BlastRadius:
    """Failed calls in `window` (whole seconds, inclusive), by consumer (API key;
    ``anonymous`` when the call had none), route and status or error kind."""
    start, end = window
    consumers: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    total = 0
    for bucket, n in failures.items():
        if not start <= bucket.second <= end:
            continue
        total += n
        consumers[bucket.consumer] += n
        routes[bucket.route] += n
        statuses[bucket.kind] += n
    return BlastRadius(
        failed_calls=total,
        consumers=_top(consumers),
        consumer_count=len(consumers),
        routes=_top(routes),
        route_count=len(routes),
        statuses=_top(statuses),
    )


def _top(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _since(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 3)


def lead_times(
    *, first_failure: float | None, first_signal: float | None, first_user_report: float | None
) -> dict[str, Any]:
    """First failing call → first signal → first user report, in seconds. A negative
    value says the later step came first (a user reported before any signal fired)."""
    return {
        "first_failure_at": _iso(first_failure),
        "first_signal_at": _iso(first_signal),
        "first_user_report_at": _iso(first_user_report),
        "failure_to_signal_seconds": _since(first_failure, first_signal),
        "failure_to_user_report_seconds": _since(first_failure, first_user_report),
        "signal_ahead_of_users_seconds": _since(first_signal, first_user_report),
    }


@dataclass(frozen=True, slots=True)
class IssueFacts:
    """What a review needs of its issue, as plain data."""

    id: int
    title: str
    priority: str
    component: str | None
    impact_started_at: datetime | None
    detected_at: datetime | None
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None


class SignalFacts(NamedTuple):
    id: int
    kind: str  # user | system | team
    source: str
    occurred_at: datetime
    summary: str
    route: str | None
    rule: str | None


class EventFacts(NamedTuple):
    at: datetime
    actor: str
    kind: str
    text: str


# timeline kinds worth a line in the review (edits of single fields and notifications are not)
IMPORTANT = frozenset(
    {"created", "status", "priority", "assignment", "escalation", "sla", "validation",
     "merge", "split", "deployment", "comment", "acknowledged", "page"}
)  # fmt: skip
MAX_EVENTS = 60
MAX_SIGNALS = 50


def important_events(events: Iterable[EventFacts]) -> list[dict[str, Any]]:
    picked = [e for e in events if e.kind in IMPORTANT]
    picked.sort(key=lambda e: e.at)
    if len(picked) > MAX_EVENTS:  # the start and the end of a long incident matter most
        half = MAX_EVENTS // 2
        picked = picked[:half] + picked[-half:]
    return [
        {"at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "text": e.text[:500]}
        for e in picked
    ]


def draft_facts(
    *,
    issue: IssueFacts,
    signals: Sequence[SignalFacts],
    events: Iterable[EventFacts],
    failures: Tally,
    routes: Sequence[str],
    gap: float,
    scanned_blocks: int,
    complete: bool,
) -> dict[str, Any]:
    """Everything a review draft states from data, as JSON-able values.

    `failures` are the failing calls on the issue's `routes` (see `tally`); times are
    whole seconds. `complete` is False when the scan stopped at its bound (the counts are
    then lower bounds, and the draft says so)."""
    ordered = sorted(signals, key=lambda s: s.occurred_at)
    first_signal = ordered[0].occurred_at.timestamp() if ordered else None
    users = [s for s in ordered if s.kind == "user"]
    first_user = users[0].occurred_at.timestamp() if users else None
    resolved = issue.resolved_at.timestamp() if issue.resolved_at else None
    anchors = [
        t
        for t in (
            first_signal,
            issue.impact_started_at.timestamp() if issue.impact_started_at else None,
            issue.detected_at.timestamp() if issue.detected_at else None,
        )
        if t is not None
    ]
    anchor = min(anchors) if anchors else (resolved or 0.0)
    seconds = sorted({float(b.second) for b in failures})
    until = resolved if resolved is not None else (seconds[-1] if seconds else anchor)
    window = impact_window(seconds, anchor=anchor, until=until, gap=gap)
    radius = blast_radius(failures, window) if window else None
    times = mttx(
        impact_started_at=(
            datetime.fromtimestamp(window[0], UTC) if window else issue.impact_started_at
        ),
        detected_at=issue.detected_at,
        acknowledged_at=issue.acknowledged_at,
        resolved_at=issue.resolved_at,
    )
    return {
        "issue": {"id": issue.id, "title": issue.title, "priority": issue.priority},
        "routes": list(routes),
        "impact": None
        if window is None
        else {
            "first_failure_at": _iso(window[0]),
            "last_failure_at": _iso(window[1]),
            "duration_seconds": round(window[1] - window[0], 3),
        },
        "blast_radius": radius.as_dict() if radius else None,
        "lead_times": lead_times(
            first_failure=window[0] if window else None,
            first_signal=first_signal,
            first_user_report=first_user,
        ),
        "mttx": {
            "mttd_seconds": times.mttd,
            "mtta_seconds": times.mtta,
            "mttr_seconds": times.mttr,
            "detected_at": issue.detected_at.isoformat() if issue.detected_at else None,
            "acknowledged_at": issue.acknowledged_at.isoformat() if issue.acknowledged_at else None,
            "mitigated_at": issue.mitigated_at.isoformat() if issue.mitigated_at else None,
            "resolved_at": issue.resolved_at.isoformat() if issue.resolved_at else None,
        },
        "signals": [
            {
                "id": s.id,
                "kind": s.kind,
                "source": s.source,
                "occurred_at": s.occurred_at.isoformat(),
                "summary": s.summary,
                "route": s.route,
                "rule": s.rule,
            }
            for s in ordered[:MAX_SIGNALS]
        ],
        "signal_count": len(ordered),
        "user_reports": len(users),
        "timeline": important_events(events),
        "telemetry": {"blocks_read": scanned_blocks, "complete": complete},
    }


# --- lifecycle ----------------------------------------------------------------------------

_MOVES: dict[ReviewState, tuple[ReviewState, ...]] = {
    ReviewState.draft: (ReviewState.in_review,),
    ReviewState.in_review: (ReviewState.draft, ReviewState.published),
    ReviewState.published: (ReviewState.in_review,),
}


def allowed(state: ReviewState) -> list[ReviewState]:
    return list(_MOVES[state])


def check_transition(current: ReviewState, to: ReviewState, *, missing: list[str]) -> None:
    """Refuse a move the lifecycle does not have, and publishing while a field people must
    write (`missing`) is empty."""
    if to not in _MOVES[current]:
        names = ", ".join(s.value for s in _MOVES[current])
        raise InvalidTransition(
            f"a review cannot go from {current.value} to {to.value} (from here: {names})"
        )
    if to is ReviewState.published and missing:
        raise InvalidTransition(
            f"write {', '.join(missing)} before publishing the review",
            details={"missing": missing},
        )


REQUIRED_TO_PUBLISH = ("root_cause",)


# --- Markdown export ----------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    sign = "-" if seconds < 0 else ""
    s = int(abs(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h}h {m:02d}m {s:02d}s"
    return f"{sign}{m}m {s:02d}s" if m else f"{sign}{s}s"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(review: dict[str, Any]) -> str:
    """The review as one Markdown document (`review` is a `ReviewRead` dumped as JSON)."""
    facts: dict[str, Any] = review.get("facts") or {}
    out = [
        f"# Post-incident review: {review['title']}",
        "",
        f"Issue #{review['issue_id']} ({review['issue_priority']}) · state: {review['state']}",
        "",
    ]
    impact = facts.get("impact")
    radius = facts.get("blast_radius")
    lead = facts.get("lead_times") or {}
    times = facts.get("mttx") or {}
    out += ["## Impact", ""]
    if impact:
        out.append(
            f"- Window: {impact['first_failure_at']} → {impact['last_failure_at']} "
            f"({_duration(impact['duration_seconds'])})"
        )
    else:
        out.append("- No failing call found on the issue's routes.")
    if radius:
        out.append(
            f"- Failed calls: {radius['failed_calls']} on {radius['route_count']} route(s), "
            f"{radius['consumer_count']} consumer(s)"
        )
        if not (facts.get("telemetry") or {}).get("complete", True):
            out.append("- (telemetry scan stopped at its bound: counts are lower bounds)")
        if radius["consumers"]:
            out += ["", "| Consumer | Failed calls |", "|---|---|"]
            out += [
                f"| {_md_cell(c['consumer'])} | {c['failed_calls']} |" for c in radius["consumers"]
            ]
        if radius["routes"]:
            out += ["", "| Route | Failed calls |", "|---|---|"]
            out += [f"| {_md_cell(r['route'])} | {r['failed_calls']} |" for r in radius["routes"]]
    out += [
        "",
        "## Detection",
        "",
        f"- First failing call: {lead.get('first_failure_at') or 'unknown'}",
        f"- First signal: {lead.get('first_signal_at') or 'none'} "
        f"(+{_duration(lead.get('failure_to_signal_seconds'))})",
        f"- First user report: {lead.get('first_user_report_at') or 'none'} "
        f"(+{_duration(lead.get('failure_to_user_report_seconds'))})",
        f"- MTTD {_duration(times.get('mttd_seconds'))}"
        f" · MTTA {_duration(times.get('mtta_seconds'))}"
        f" · MTTR {_duration(times.get('mttr_seconds'))}",
        "",
    ]
    for heading, key in (
        ("Summary", "summary"),
        ("Root cause", "root_cause"),
        ("Contributing factors", "contributing_factors"),
        ("What went well", "went_well"),
        ("What went badly", "went_badly"),
    ):
        out += [f"## {heading}", "", (review.get(key) or "").strip() or "_not written yet_", ""]
    out += ["## Action items", ""]
    items = review.get("action_items") or []
    out += [
        f"- [{'x' if a['status'] in ('resolved', 'verified', 'closed') else ' '}] "
        f"#{a['issue_id']} {a['title']} ({a['priority']}, {a['assignee'] or 'unassigned'})"
        for a in items
    ] or ["_none yet_"]
    out += ["", "## Timeline", ""]
    out += [
        f"- {e['at']} · {e['actor']} · {e['kind']}: {e['text']}" for e in facts.get("timeline", [])
    ] or ["_no events_"]
    out += ["", "## Linked signals", ""]
    out += [
        f"- #{s['id']} {s['occurred_at']} {s['kind']}/{s['source']}: {s['summary']}"
        for s in facts.get("signals", [])
    ] or ["_none_"]
    return "\n".join(out) + "\n"


# --- runbooks -----------------------------------------------------------------------------


class RunbookFacts(NamedTuple):
    name: str
    components: Sequence[str]
    routes: Sequence[str]
    rules: Sequence[str]


def match_runbooks(
    runbooks: Iterable[RunbookFacts],
    *,
    component: str | None,
    routes: Iterable[str],
    rules: Iterable[str],
) -> dict[str, list[str]]:
    """Runbook name → why it matches an issue (its component, one of its routes, or a
    detection rule whose signal is linked). Runbooks that match nothing are left out."""
    routes, rules = set(routes), set(rules)
    found: dict[str, list[str]] = {}
    for rb in runbooks:
        why = []
        if component and component in rb.components:
            why.append(f"component {component}")
        why += [f"route {r}" for r in sorted(routes & set(rb.routes))]
        why += [f"rule {r}" for r in sorted(rules & set(rb.rules))]
        if why:
            found[rb.name] = why
    return found


_MD = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> str:
    """Markdown as HTML with any HTML in it escaped (``html=False``) and only http(s),
    mailto and relative links kept (markdown-it's link validation drops ``javascript:``)."""
    html: str = _MD.render(text)
    return html

"""The stakeholder digest: pure assembly and rendering (Markdown, HTML) over plain data.

What it says: open issues by priority and SLA state, MTTD / MTTA / MTTR of the issues of the
period so far, the top failing APIs, the ticket volume against the period before, and the
NPS / CSAT of the period against the period before. No I/O; `service.digest_facts` reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from hypercare.feedback.scores import csat, nps
from hypercare.triage.rules import mttx_of

TOP_APIS = 5


@dataclass(frozen=True, slots=True)
class IssueFacts:
    priority: str
    status: str
    sla_state: str
    open: bool
    created_at: datetime
    impact_started_at: datetime | None
    detected_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApiFacts:
    route: str
    requests: int
    error_rate: float
    failed: int


@dataclass
class DigestFacts:
    start: datetime
    end: datetime
    timezone: str
    levels: Sequence[str]
    issues: Sequence[IssueFacts] = ()
    apis: Sequence[ApiFacts] = ()
    tickets: int = 0
    tickets_before: int = 0
    scores: Sequence[tuple[str, int]] = ()  # (nps | csat, score) of the period
    scores_before: Sequence[tuple[str, int]] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _median(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return round(median(found), 1) if found else None


def _trend(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return "no comparison"
    delta = round(now - before, 1)
    return "unchanged" if delta == 0 else f"{'+' if delta > 0 else ''}{delta} vs the period before"


def digest(facts: DigestFacts) -> dict[str, Any]:
    """The digest as JSON-able data."""
    open_issues = [i for i in facts.issues if i.open]
    by_priority = {
        level: {
            "open": sum(i.priority == level for i in open_issues),
            "at_risk": sum(i.priority == level and i.sla_state == "at_risk" for i in open_issues),
            "breached": sum(i.priority == level and i.sla_state == "breached" for i in open_issues),
        }
        for level in facts.levels
    }
    period = [i for i in facts.issues if facts.start <= i.created_at < facts.end]
    times = [mttx_of(i) for i in period]
    split = {"nps": [s for k, s in facts.scores if k == "nps"]}
    split["csat"] = [s for k, s in facts.scores if k == "csat"]
    before = {"nps": [s for k, s in facts.scores_before if k == "nps"]}
    before["csat"] = [s for k, s in facts.scores_before if k == "csat"]
    nps_now, nps_before = nps(split["nps"]), nps(before["nps"])
    csat_now, csat_before = csat(split["csat"]), csat(before["csat"])
    failing = sorted((a for a in facts.apis if a.failed), key=lambda a: (-a.failed, a.route))
    return {
        "period": {
            "start": facts.start.isoformat(),
            "end": facts.end.isoformat(),
            "timezone": facts.timezone,
        },
        "open_issues": {
            "total": len(open_issues),
            "by_priority": by_priority,
            "at_risk": sum(i.sla_state == "at_risk" for i in open_issues),
            "breached": sum(i.sla_state == "breached" for i in open_issues),
        },
        "issues_opened": len(period),
        "issues_resolved": sum(
            i.resolved_at is not None and facts.start <= i.resolved_at < facts.end
            for i in facts.issues
        ),
        "mttx_median_seconds": {
            "mttd": _median(t.mttd for t in times),
            "mtta": _median(t.mtta for t in times),
            "mttr": _median(t.mttr for t in times),
        },
        "top_failing_apis": [
            {
                "route": a.route,
                "failed_calls": a.failed,
                "requests": a.requests,
                "error_rate": round(a.error_rate, 4),
            }
            for a in failing[:TOP_APIS]
        ],
        "tickets": {
            "count": facts.tickets,
            "before": facts.tickets_before,
            "trend": _trend(float(facts.tickets), float(facts.tickets_before)),
        },
        "nps": {
            "score": nps_now.score,
            "responses": nps_now.responses,
            "before": nps_before.score,
            "trend": _trend(nps_now.score, nps_before.score),
        },
        "csat": {
            "score": csat_now.score,
            "responses": csat_now.responses,
            "before": csat_before.score,
            "trend": _trend(csat_now.score, csat_before.score),
        },
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m {s % 60}s"
    return f"{s}s"


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def _rows(d: dict[str, Any]) -> list[tuple[str, list[list[str]], list[str]]]:
    """The digest's tables: (title, rows, header)."""
    prio = [
        [level, str(v["open"]), str(v["at_risk"]), str(v["breached"])]
        for level, v in d["open_issues"]["by_priority"].items()
    ]
    m = d["mttx_median_seconds"]
    apis = [
        [a["route"], str(a["failed_calls"]), str(a["requests"]), f"{a['error_rate']:.2%}"]
        for a in d["top_failing_apis"]
    ]
    feedback = [
        ["Tickets", str(d["tickets"]["count"]), d["tickets"]["trend"]],
        [
            "NPS",
            f"{_score(d['nps']['score'])} ({d['nps']['responses']} responses)",
            d["nps"]["trend"],
        ],
        [
            "CSAT %",
            f"{_score(d['csat']['score'])} ({d['csat']['responses']} responses)",
            d["csat"]["trend"],
        ],
    ]
    return [
        ("Open issues", prio, ["Priority", "Open", "At risk", "Breached"]),
        (
            "Response times (median of the issues opened in the period)",
            [
                ["MTTD", _duration(m["mttd"])],
                ["MTTA", _duration(m["mtta"])],
                ["MTTR", _duration(m["mttr"])],
            ],
            ["Measure", "Median"],
        ),
        ("Top failing APIs", apis, ["Route", "Failed calls", "Requests", "Error rate"]),
        ("Customer feedback", feedback, ["", "This period", "Trend"]),
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(d: dict[str, Any], title: str) -> str:
    p = d["period"]
    lines = [
        f"# {_cell(title)}",
        "",
        f"{p['start']} → {p['end']} ({p['timezone']}): {d['open_issues']['total']} open "
        f"issues ({d['open_issues']['breached']} past their SLA), {d['issues_opened']} "
        f"opened, {d['issues_resolved']} resolved.",
    ]
    for name, rows, header in _rows(d):
        lines += ["", f"## {name}", ""]
        if not rows:
            lines.append("None.")
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_html(d: dict[str, Any], title: str) -> str:
    """A self-contained HTML fragment (email body or console preview); all text escaped."""
    p = d["period"]
    out = [
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(p['start'])} → {escape(p['end'])} ({escape(p['timezone'])}): "
        f"{d['open_issues']['total']} open issues ({d['open_issues']['breached']} past "
        f"their SLA), {d['issues_opened']} opened, {d['issues_resolved']} resolved.</p>",
    ]
    for name, rows, header in _rows(d):
        out.append(f"<h2>{escape(name)}</h2>")
        if not rows:
            out.append("<p>None.</p>")
            continue
        head = "".join(f"<th scope='col'>{escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "\n".join(out) + "\n"


def message(d: dict[str, Any], title: str, why: str) -> dict[str, Any]:
    """What each digest delivery carries: email sends `subject`, `text` and `html`, Slack and
    Teams the Markdown, a webhook the `data` (see `hypercare.response.channels`)."""
    return {
        "kind": "digest",
        "subject": f"{title} ({why})",
        "text": to_markdown(d, title),
        "html": to_html(d, title),
        "data": d,
    }


def scheduled_between(
    after: datetime, until: datetime, times: Sequence[str], zone: ZoneInfo
) -> datetime | None:
    """The latest of the local `times` (HH:MM in `zone`) in (after, until], or None: a
    digest is due. Days are walked in local time, at most 3 back (a longer outage sends one
    digest, not one per missed time)."""
    if not times or until <= after:
        return None
    first = max(after, until - timedelta(days=3)).astimezone(zone).date()
    last = until.astimezone(zone).date()
    found: datetime | None = None
    day = first
    while day <= last:
        for t in times:
            hh, mm = (int(x) for x in t.split(":"))
            at = datetime(day.year, day.month, day.day, hh, mm, tzinfo=zone)
            if after < at <= until and (found is None or at > found):
                found = at
        day += timedelta(days=1)
    return found


def shift_changes(before: Mapping[str, str | None], now: Mapping[str, str | None]) -> list[str]:
    """Schedules whose person on call changed (a schedule first seen is no change)."""
    return sorted(k for k, v in now.items() if k in before and before[k] != v)

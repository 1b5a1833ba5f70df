"""The daily and final launch reports: plain data in (`ReportData`, loaded by
`service.load_report`), Markdown or a printable HTML page out. Charts are inline SVG, so the
page needs nothing from the network and prints as it shows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from hypercare.launch.rules import Scorecard, SloStatus, TimeStats, time_stats
from hypercare.triage.rules import mttx_of


@dataclass(frozen=True, slots=True)
class ReportIssue:
    id: int
    title: str
    priority: str
    status: str
    component: str | None
    source: str
    sla_state: str
    impact_started_at: datetime | None
    detected_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class DayFeedback:
    day: str
    volume: int
    nps: float | None
    csat: float | None


@dataclass(frozen=True, slots=True)
class FailingApi:
    route: str
    calls: int
    errors: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


@dataclass
class ReportData:
    launch: str
    kind: str  # daily | final
    state: str
    start: datetime
    end: datetime
    generated_at: datetime
    priorities: list[str]
    issues: list[ReportIssue]
    feedback: list[DayFeedback]
    failing: list[FailingApi]
    slos: list[SloStatus]
    # SLO name → (time, budget remaining share) points
    budgets: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    scorecard: Scorecard | None = None


def mttx_table(issues: list[ReportIssue], priorities: list[str]) -> list[dict[str, Any]]:
    """MTTD/MTTA/MTTR per priority as median and p90 (seconds)."""
    rows = []
    for p in priorities:
        mine = [i for i in issues if i.priority == p]
        times = [mttx_of(i) for i in mine]
        rows.append(
            {
                "priority": p,
                "issues": len(mine),
                "mttd": time_stats(t.mttd for t in times),
                "mtta": time_stats(t.mtta for t in times),
                "mttr": time_stats(t.mttr for t in times),
            }
        )
    return rows


def sla_compliance(issues: list[ReportIssue], priorities: list[str]) -> list[dict[str, Any]]:
    rows = []
    for p in priorities:
        mine = [i for i in issues if i.priority == p]
        breached = sum(1 for i in mine if i.sla_state == "breached")
        rows.append(
            {
                "priority": p,
                "issues": len(mine),
                "breached": breached,
                "compliance": None
                if not mine
                else round(100 * (len(mine) - breached) / len(mine), 1),
            }
        )
    return rows


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _stats(s: TimeStats) -> str:
    return f"{_dur(s.median)} / {_dur(s.p90)}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:g}%"


def sections(data: ReportData) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables as (title, header, rows): both formats render these."""
    out: list[tuple[str, list[str], list[list[str]]]] = []
    out.append(
        (
            "Response times (median / p90)",
            ["priority", "issues", "MTTD", "MTTA", "MTTR"],
            [
                [
                    r["priority"],
                    str(r["issues"]),
                    _stats(r["mttd"]),
                    _stats(r["mtta"]),
                    _stats(r["mttr"]),
                ]
                for r in mttx_table(data.issues, data.priorities)
            ],
        )
    )
    out.append(
        (
            "SLA compliance",
            ["priority", "issues", "breached", "compliance"],
            [
                [r["priority"], str(r["issues"]), str(r["breached"]), _pct(r["compliance"])]
                for r in sla_compliance(data.issues, data.priorities)
            ],
        )
    )
    for title, attr in (
        ("Issues by priority", "priority"),
        ("Issues by component", "component"),
        ("Issues by source", "source"),
    ):
        counts = Counter(str(getattr(i, attr) or "(none)") for i in data.issues)
        out.append((title, ["", "issues"], [[k, str(n)] for k, n in counts.most_common()]))
    out.append(
        (
            "Feedback",
            ["day", "volume", "NPS", "CSAT"],
            [
                [d.day, str(d.volume), "–" if d.nps is None else f"{d.nps:g}", _pct(d.csat)]
                for d in data.feedback
            ],
        )
    )
    out.append(
        (
            "Top failing APIs",
            ["route", "calls", "5xx", "error rate"],
            [
                [f.route, str(f.calls), str(f.errors), f"{100 * f.error_rate:.2f}%"]
                for f in data.failing
            ],
        )
    )
    out.append(
        (
            "SLOs and error budgets",
            ["SLO", "kind", "target", "SLI", "budget left", "met"],
            [
                [
                    s.name,
                    s.kind,
                    f"{s.target:g}%",
                    _pct(s.sli),
                    f"{100 * s.budget_remaining:.1f}%",
                    "yes" if s.met else "no",
                ]
                for s in data.slos
            ],
        )
    )
    if data.scorecard is not None:
        out.append(
            (
                "Exit criteria",
                ["criterion", "outcome", "evidence"],
                [
                    [r.label, "PASS" if r.passed else "FAIL", r.summary]
                    for r in data.scorecard.results
                ],
            )
        )
    return out


def _title(data: ReportData) -> str:
    what = "Daily report" if data.kind == "daily" else "Post-hypercare report"
    return f"{what}: {data.launch}"


def _period(data: ReportData) -> str:
    return (
        f"{data.start:%Y-%m-%d %H:%M} – {data.end:%Y-%m-%d %H:%M} UTC · state {data.state} · "
        f"generated {data.generated_at:%Y-%m-%d %H:%M} UTC"
    )


def _outcome(data: ReportData) -> str:
    card = data.scorecard
    if card is None or not card.results:
        return "No exit criteria declared."
    verdict = "every criterion passes" if card.passed else "not ready to exit"
    return f"Exit criteria: {card.passing}/{len(card.results)} pass — {verdict}."


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(data: ReportData) -> str:
    lines = [f"# {_title(data)}", "", _period(data), "", f"**{_outcome(data)}**", ""]
    for title, header, rows in sections(data):
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["(none)", ""]
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def budget_svg(points: list[tuple[int, float]], *, width: int = 480, height: int = 120) -> str:
    """Error budget remaining over time as an inline SVG line (0 % and 100 % marked)."""
    if not points:
        return '<p class="empty">No calls yet.</p>'
    t0, t1 = points[0][0], points[-1][0]
    span = max(1, t1 - t0)
    lo = min(0.0, min(v for _, v in points))
    hi = 1.0
    rng = hi - lo or 1.0

    def xy(t: int, v: float) -> str:
        return f"{(t - t0) / span * (width - 2) + 1:.1f},{(hi - v) / rng * (height - 2) + 1:.1f}"

    zero = (hi - 0) / rng * (height - 2) + 1
    line = " ".join(xy(t, v) for t, v in points)
    last = points[-1][1]
    return (
        f'<svg class="budget" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="error budget remaining, now {100 * last:.1f}%">'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f7f7f7" stroke="#ccc"/>'
        f'<line x1="0" y1="{zero:.1f}" x2="{width}" y2="{zero:.1f}" stroke="#c00" '
        'stroke-dasharray="4 3"/>'
        f'<polyline fill="none" stroke="{"#2a7" if last > 0 else "#c00"}" stroke-width="2" '
        f'points="{line}"/>'
        f'<text x="4" y="12" font-size="10" fill="#555">100%</text>'
        f'<text x="4" y="{zero - 3:.1f}" font-size="10" fill="#c00">0%</text>'
        "</svg>"
    )


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#111;max-width:60rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.5rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
.pass{color:#176b3a;font-weight:600}.fail{color:#a00;font-weight:600}.empty{color:#666}
figure{margin:.5rem 0}figcaption{font-size:.85rem;color:#444}
@media print{body{margin:0}h2{break-after:avoid}table,figure{break-inside:avoid}}
"""


def html(data: ReportData) -> str:
    """A standalone, printable page (no script, no external asset)."""
    parts = [
        # an empty icon: the browser asks the server for none
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(_title(data))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(_title(data))}</h1><p>{escape(_period(data))}</p>",
        f'<p class="{"pass" if data.scorecard and data.scorecard.passed else "fail"}">'
        f"{escape(_outcome(data))}</p>",
    ]
    for title, header, rows in sections(data):
        parts.append(f"<h2>{escape(title)}</h2>")
        if title == "SLOs and error budgets":
            for s in data.slos:
                parts.append(
                    f"<figure>{budget_svg(data.budgets.get(s.name, []))}"
                    f"<figcaption>{escape(s.name)}: error budget remaining</figcaption></figure>"
                )
        if not rows:
            parts.append('<p class="empty">None.</p>')
            continue
        parts.append("<table><thead><tr>")
        parts += [f'<th scope="col">{escape(h)}</th>' for h in header]
        parts.append("</tr></thead><tbody>")
        for r in rows:
            cells = []
            for c in r:
                cls = ' class="pass"' if c == "PASS" else ' class="fail"' if c == "FAIL" else ""
                cells.append(f"<td{cls}>{escape(c)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "".join(parts)

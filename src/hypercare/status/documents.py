"""The public documents, built from plain data: the Statuspage v2 JSON, the HTML pages and
the RSS/Atom feeds. Pure: no I/O beyond reading the package's own templates once.

Only what was published is passed in: the internal issue, its title, its timeline and any
draft never reach these functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from hypercare.status.rules import (
    LABELS,
    UPTIME_DEFINITION,
    ComponentStatus,
    DayUptime,
    bar_class,
    indicator,
    overall_uptime,
    slug,
)

TEMPLATES = Path(__file__).parent / "templates"


def iso(value: datetime | None) -> str | None:
    """Statuspage's timestamp style: UTC with milliseconds and a Z."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class PageInfo:
    id: str
    name: str
    url: str
    time_zone: str
    logo: str | None
    colours: Mapping[str, str]
    # link to the subscribe form (comms.subscribers.enabled)
    subscribe: bool = False


@dataclass(frozen=True)
class ComponentView:
    id: str
    name: str
    description: str
    group: str | None
    position: int
    status: ComponentStatus
    created_at: datetime
    updated_at: datetime
    days: Sequence[DayUptime] = ()


@dataclass(frozen=True)
class UpdateView:
    id: str
    status: str
    body: str
    created_at: datetime
    affected_components: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class IncidentView:
    id: str
    name: str
    status: str
    impact: str
    created_at: datetime
    updated_at: datetime
    monitoring_at: datetime | None
    resolved_at: datetime | None
    components: Sequence[str]  # component ids
    updates: Sequence[UpdateView]  # newest first
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None


@dataclass(frozen=True)
class PageData:
    page: PageInfo
    components: Sequence[ComponentView]
    incidents: Sequence[IncidentView]  # published, newest first (history included)
    maintenances: Sequence[IncidentView]  # newest scheduled_for last
    updated_at: datetime
    history_days: int = 90
    extra: dict[str, Any] = field(default_factory=dict)


# --- Statuspage v2 JSON ------------------------------------------------------------------------


def _page(d: PageData) -> dict[str, Any]:
    p = d.page
    return {
        "id": p.id,
        "name": p.name,
        "url": p.url,
        "time_zone": p.time_zone,
        "updated_at": iso(d.updated_at),
    }


def _groups(d: PageData) -> list[tuple[str, list[ComponentView]]]:
    groups: dict[str, list[ComponentView]] = {}
    for c in d.components:
        if c.group:
            groups.setdefault(c.group, []).append(c)
    return list(groups.items())


def group_id(name: str) -> str:
    return "group-" + slug(name)


def components_json(d: PageData) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in d.components:
        out.append(
            {
                "id": c.id,
                "name": c.name,
                "status": c.status.value,
                "created_at": iso(c.created_at),
                "updated_at": iso(c.updated_at),
                "position": c.position,
                "description": c.description or None,
                "showcase": True,
                "start_date": c.created_at.astimezone(UTC).date().isoformat(),
                "group_id": group_id(c.group) if c.group else None,
                "page_id": d.page.id,
                "group": False,
                "only_show_if_degraded": False,
            }
        )
    for name, members in _groups(d):
        worst = max((m.status for m in members), key=_severity)
        out.append(
            {
                "id": group_id(name),
                "name": name,
                "status": worst.value,
                "created_at": iso(min(m.created_at for m in members)),
                "updated_at": iso(max(m.updated_at for m in members)),
                "position": min(m.position for m in members),
                "description": None,
                "showcase": False,
                "start_date": None,
                "group_id": None,
                "page_id": d.page.id,
                "group": True,
                "only_show_if_degraded": False,
                "components": [m.id for m in members],
            }
        )
    out.sort(key=lambda c: (c["position"], c["name"]))
    return out


def _severity(s: ComponentStatus) -> int:
    order = (
        ComponentStatus.operational,
        ComponentStatus.under_maintenance,
        ComponentStatus.degraded_performance,
        ComponentStatus.partial_outage,
        ComponentStatus.major_outage,
    )
    return order.index(s)


def _incident(d: PageData, i: IncidentView, names: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": i.id,
        "name": i.name,
        "status": i.status,
        "created_at": iso(i.created_at),
        "updated_at": iso(i.updated_at),
        "monitoring_at": iso(i.monitoring_at),
        "resolved_at": iso(i.resolved_at),
        "impact": i.impact,
        "shortlink": f"{d.page.url.rstrip('/')}/status/history#incident-{i.id}",
        "started_at": iso(i.created_at),
        "page_id": d.page.id,
        "incident_updates": [
            {
                "id": u.id,
                "status": u.status,
                "body": u.body,
                "incident_id": i.id,
                "created_at": iso(u.created_at),
                "updated_at": iso(u.created_at),
                "display_at": iso(u.created_at),
                "affected_components": [dict(a) for a in u.affected_components] or None,
                "deliver_notifications": True,
            }
            for u in i.updates
        ],
        "components": [
            {"id": cid, "name": names.get(cid, cid), "page_id": d.page.id} for cid in i.components
        ],
    }
    if i.scheduled_for is not None:
        out["scheduled_for"] = iso(i.scheduled_for)
        out["scheduled_until"] = iso(i.scheduled_until)
    return out


def status_json(d: PageData) -> dict[str, str]:
    unresolved = [i.impact for i in d.incidents if i.status not in ("resolved", "postmortem")]
    ind, desc = indicator([c.status for c in d.components], unresolved)
    return {"indicator": ind, "description": desc}


def documents(d: PageData) -> dict[str, dict[str, Any]]:
    """Every Statuspage v2 JSON document, by its path under /api/v2/."""
    names = {c.id: c.name for c in d.components}
    page = _page(d)
    comps = components_json(d)
    incidents = [_incident(d, i, names) for i in d.incidents]
    unresolved = [
        x
        for x, i in zip(incidents, d.incidents, strict=True)
        if i.status not in ("resolved", "postmortem")
    ]
    maint = [_incident(d, m, names) for m in d.maintenances]
    upcoming = [x for x in maint if x["status"] == "scheduled"]
    active = [x for x in maint if x["status"] in ("in_progress", "verifying")]
    status = status_json(d)
    return {
        "summary.json": {
            "page": page,
            "status": status,
            "components": comps,
            "incidents": unresolved,
            "scheduled_maintenances": upcoming + active,
        },
        "status.json": {"page": page, "status": status},
        "components.json": {"page": page, "components": comps},
        "incidents.json": {"page": page, "incidents": incidents},
        "incidents/unresolved.json": {"page": page, "incidents": unresolved},
        "scheduled-maintenances.json": {"page": page, "scheduled_maintenances": maint},
        "scheduled-maintenances/upcoming.json": {
            "page": page,
            "scheduled_maintenances": upcoming,
        },
        "scheduled-maintenances/active.json": {"page": page, "scheduled_maintenances": active},
    }


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


# --- HTML and feeds ---------------------------------------------------------------------------

DEFAULT_COLOURS = {
    # all ≥ 4.5:1 against white (WCAG AA for normal text)
    "operational": "#1a7f37",
    "degraded": "#8a5a00",
    "partial": "#b35900",
    "major": "#b42318",
    "maintenance": "#1d4ed8",
    "accent": "#1f2937",
}
_CLASS = {
    ComponentStatus.operational: "operational",
    ComponentStatus.degraded_performance: "degraded",
    ComponentStatus.partial_outage: "partial",
    ComponentStatus.major_outage: "major",
    ComponentStatus.under_maintenance: "maintenance",
}
_INDICATOR_CLASS = {
    "none": "operational",
    "minor": "degraded",
    "major": "partial",
    "critical": "major",
}


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _rfc822(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "xml", "rss", "atom"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = _when
_env.filters["rfc822"] = _rfc822
_env.filters["iso"] = iso


def _context(d: PageData) -> dict[str, Any]:
    colours = {**DEFAULT_COLOURS, **d.page.colours}
    status = status_json(d)
    groups: list[tuple[str | None, list[dict[str, Any]]]] = []
    index: dict[str | None, list[dict[str, Any]]] = {}
    for c in sorted(d.components, key=lambda c: (c.position, c.name)):
        up = overall_uptime(c.days)
        row = {
            "name": c.name,
            "description": c.description,
            "status": c.status.value,
            "label": LABELS[c.status],
            "css": _CLASS[c.status],
            "uptime": None if up is None else f"{up * 100:.2f}%",
            "days": [
                {
                    "day": day.day,
                    "css": bar_class(day.ratio),
                    "title": (
                        f"{day.day}: no data"
                        if day.ratio is None
                        else f"{day.day}: {day.ratio * 100:.2f}% of {day.requests} requests"
                    ),
                }
                for day in c.days
            ],
        }
        if c.group not in index:
            index[c.group] = []
            groups.append((c.group, index[c.group]))
        index[c.group].append(row)
    active = [i for i in d.incidents if i.status not in ("resolved", "postmortem")]
    names = {c.id: c.name for c in d.components}
    return {
        "page": d.page,
        "colours": colours,
        "overall": status["description"],
        "overall_css": _INDICATOR_CLASS[status["indicator"]],
        "groups": groups,
        "active": active,
        "incidents": d.incidents,
        "maintenances": [m for m in d.maintenances if m.status != "completed"],
        "names": names,
        "updated_at": d.updated_at,
        "history_days": d.history_days,
        "definition": UPTIME_DEFINITION,
    }


def render(name: str, d: PageData) -> bytes:
    return _env.get_template(name).render(_context(d)).encode()

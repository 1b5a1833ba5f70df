"""Database reads and writes of the status page. Functions take a keyword-only session and
never commit: the request or the job owns the transaction.

Every public incident and each of its updates is also recorded on the internal issue's
timeline (kind ``status_page``), and every automatic component change on the timeline of
the open issue of the component's routes (kind ``status_component``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import Conflict, InvalidInput, NotFound
from hypercare.feedback.models import Signal
from hypercare.status.models import (
    IncidentRead,
    MaintenanceRead,
    OverrideRead,
    StatusComponentState,
    StatusIncident,
    StatusIncidentUpdate,
    StatusMaintenance,
    StatusOverride,
    StatusTemplate,
    UpdateRead,
)
from hypercare.status.rules import ComponentStatus, Window
from hypercare.telemetry.collector import HOURS_UNTIL
from hypercare.telemetry.models import TelemetryHour, TelemetryMinute, TelemetryState
from hypercare.triage import service as triage
from hypercare.triage.models import Issue
from hypercare.triage.rules import OPEN

TIMELINE_KIND = "status_page"
COMPONENT_KIND = "status_component"
REMINDER_KIND = "status_reminder"


# --- incidents -------------------------------------------------------------------------------


async def get_incident(*, session: AsyncSession, incident_id: int) -> StatusIncident:
    found = await session.get(StatusIncident, incident_id)
    if found is None:
        raise NotFound(f"no public incident with id {incident_id}")
    return found


async def updates_of(*, session: AsyncSession, incident_ids: Sequence[int]) -> dict[int, list[Any]]:
    out: dict[int, list[StatusIncidentUpdate]] = {i: [] for i in incident_ids}
    if not incident_ids:
        return dict(out)
    rows = await session.scalars(
        select(StatusIncidentUpdate)
        .where(StatusIncidentUpdate.incident_id.in_(list(incident_ids)))
        .order_by(StatusIncidentUpdate.created_at.desc(), StatusIncidentUpdate.id.desc())
    )
    for u in rows:
        out[u.incident_id].append(u)
    return dict(out)


async def list_incidents(
    *,
    session: AsyncSession,
    published_only: bool,
    since: datetime | None = None,
    limit: int = 50,
    unresolved: bool = False,
    issue_id: int | None = None,
) -> list[StatusIncident]:
    stmt = select(StatusIncident)
    if published_only:
        stmt = stmt.where(StatusIncident.published.is_(True))
    if since is not None:
        stmt = stmt.where(
            or_(StatusIncident.resolved_at.is_(None), StatusIncident.resolved_at >= since)
        )
    if unresolved:
        stmt = stmt.where(StatusIncident.status.not_in(("resolved", "postmortem")))
    if issue_id is not None:
        stmt = stmt.where(StatusIncident.issue_id == issue_id)
    stmt = stmt.order_by(StatusIncident.created_at.desc(), StatusIncident.id.desc()).limit(limit)
    return list(await session.scalars(stmt))


def _timeline(
    session: AsyncSession, issue: Issue | None, text: str, data: dict[str, Any], now: datetime
) -> None:
    if issue is not None:
        triage.record(
            session, issue, actor="status page", kind=TIMELINE_KIND, text=text, data=data, at=now
        )


async def create_incident(
    *,
    session: AsyncSession,
    name: str,
    status: str,
    impact: str,
    components: Sequence[str],
    body: str,
    issue_id: int | None,
    publish: bool,
    actor: str,
    now: datetime,
    affected: Sequence[dict[str, Any]] = (),
    suggested_by: str | None = None,
) -> StatusIncident:
    issue = None
    if issue_id is not None:
        issue = await triage.get_issue(session=session, issue_id=issue_id)
    incident = StatusIncident(
        issue_id=issue_id,
        name=name,
        status=status,
        impact=impact,
        components=list(components),
        published=publish,
        suggested_by=suggested_by,
        created_at=now,
        updated_at=now,
        published_at=now if publish else None,
        last_update_at=now,
        resolved_at=now if status in ("resolved", "postmortem") else None,
    )
    session.add(incident)
    await session.flush()
    session.add(
        StatusIncidentUpdate(
            incident_id=incident.id,
            status=status,
            body=body,
            affected_components=list(affected),
            created_by=actor,
            created_at=now,
        )
    )
    what = "Public incident published" if publish else "Public incident drafted"
    _timeline(
        session,
        issue,
        f"{what} by {actor}: {name} ({status}, impact {impact}): {body}"[:4000],
        {"incident_id": incident.id, "status": status, "impact": impact, "published": publish},
        now,
    )
    await session.flush()
    return incident


async def add_update(
    *,
    session: AsyncSession,
    incident_id: int,
    status: str,
    body: str,
    actor: str,
    now: datetime,
    impact: str | None = None,
    affected: Sequence[dict[str, Any]] = (),
    publish: bool | None = None,
) -> StatusIncident:
    incident = await get_incident(session=session, incident_id=incident_id)
    if incident.status == "postmortem" and status != "postmortem":
        raise Conflict("this incident has its postmortem; open a new incident instead")
    incident.status = status
    if impact is not None:
        incident.impact = impact
    if publish and not incident.published:
        incident.published = True
        incident.published_at = now
    incident.updated_at = now
    incident.last_update_at = now
    incident.reminded_at = None
    if status == "monitoring" and incident.monitoring_at is None:
        incident.monitoring_at = now
    if status in ("resolved", "postmortem"):
        incident.resolved_at = incident.resolved_at or now
    else:
        incident.resolved_at = None
    for change in affected:
        if change["name"] not in incident.components:
            incident.components = [*incident.components, change["name"]]
    session.add(
        StatusIncidentUpdate(
            incident_id=incident.id,
            status=status,
            body=body,
            affected_components=list(affected),
            created_by=actor,
            created_at=now,
        )
    )
    issue = await session.get(Issue, incident.issue_id) if incident.issue_id else None
    _timeline(
        session,
        issue,
        f"Public update by {actor} ({status}): {body}"[:4000],
        {"incident_id": incident.id, "status": status, "published": incident.published},
        now,
    )
    await session.flush()
    return incident


def update_read(u: StatusIncidentUpdate) -> UpdateRead:
    return UpdateRead(
        id=u.id,
        status=u.status,
        body=u.body,
        affected_components=u.affected_components,
        created_by=u.created_by,
        created_at=u.created_at,
    )


def incident_read(i: StatusIncident, updates: Sequence[StatusIncidentUpdate]) -> IncidentRead:
    return IncidentRead(
        id=i.id,
        issue_id=i.issue_id,
        name=i.name,
        status=i.status,
        impact=i.impact,
        components=i.components,
        published=i.published,
        suggested_by=i.suggested_by,
        created_at=i.created_at,
        updated_at=i.updated_at,
        resolved_at=i.resolved_at,
        last_update_at=i.last_update_at,
        updates=[update_read(u) for u in updates],
    )


async def remind(
    *, session: AsyncSession, incident: StatusIncident, minutes: int, now: datetime
) -> None:
    """Tell the responders that the public has had no update for `minutes` (on the issue's
    timeline, as a comment-like entry the response outbox sees)."""
    incident.reminded_at = now
    issue = await session.get(Issue, incident.issue_id) if incident.issue_id else None
    if issue is not None:
        triage.record(
            session,
            issue,
            actor="status page",
            kind=REMINDER_KIND,
            text=(
                f"No public update on status page incident “{incident.name}” for {minutes} "
                "minutes: post one (the public is waiting)."
            ),
            data={"incident_id": incident.id, "minutes": minutes},
            at=now,
        )


async def suggest_incident(
    *,
    session: AsyncSession,
    component: str,
    status: ComponentStatus,
    impact: str,
    body: str,
    issue_id: int | None,
    now: datetime,
) -> StatusIncident | None:
    """A draft incident for a component that left operational, unless one is open for it."""
    for open_one in await list_incidents(session=session, published_only=False, unresolved=True):
        if component in open_one.components:
            return None
    return await create_incident(
        session=session,
        name=f"{component}: {status.value.replace('_', ' ')}",
        status="investigating",
        impact=impact,
        components=[component],
        body=body,
        issue_id=issue_id,
        publish=False,
        actor="hypercare",
        now=now,
        suggested_by=component,
    )


async def close_drafts(*, session: AsyncSession, components: Sequence[str], now: datetime) -> int:
    """Close the unpublished suggested drafts of `components` (a published incident replaced
    them, or the component is back to operational); they were never public."""
    closed = 0
    for draft in await list_incidents(session=session, published_only=False, unresolved=True):
        if (
            not draft.published
            and draft.suggested_by is not None
            and draft.suggested_by in components
        ):
            draft.status = "resolved"
            draft.resolved_at = now
            draft.updated_at = now
            closed += 1
    return closed


# --- the issue that explains a component's change ---------------------------------------------


async def open_issue_for(*, session: AsyncSession, routes: Sequence[str]) -> Issue | None:
    """The newest open issue on one of `routes` (its own route, or a linked signal's)."""
    if not routes:
        return None
    open_states = [s.value for s in OPEN]
    direct = await session.scalar(
        select(Issue)
        .where(Issue.route.in_(list(routes)), Issue.status.in_(open_states))
        .order_by(Issue.id.desc())
        .limit(1)
    )
    via = await session.scalar(
        select(Issue)
        .join(Signal, Signal.issue_id == Issue.id)
        .where(Signal.route.in_(list(routes)), Issue.status.in_(open_states))
        .order_by(Issue.id.desc())
        .limit(1)
    )
    if direct is None or (via is not None and via.id > direct.id):
        return via
    return direct


async def record_component_change(
    *,
    session: AsyncSession,
    component: str,
    routes: Sequence[str],
    old: ComponentStatus,
    new: ComponentStatus,
    reason: str,
    now: datetime,
) -> int | None:
    """Store the new automatic state; note it on the open issue of the routes, if any."""
    row = await session.get(StatusComponentState, component)
    if row is None:
        session.add(
            StatusComponentState(component=component, status=new.value, reason=reason, since=now)
        )
    else:
        row.status, row.reason, row.since = new.value, reason, now
    issue = await open_issue_for(session=session, routes=routes)
    if issue is None:
        return None
    triage.record(
        session,
        issue,
        actor="status page",
        kind=COMPONENT_KIND,
        text=f"Status page: {component} {old.value} → {new.value} ({reason})"[:4000],
        data={"component": component, "from": old.value, "to": new.value, "reason": reason},
        at=now,
    )
    return issue.id


async def component_states(*, session: AsyncSession) -> dict[str, StatusComponentState]:
    return {r.component: r for r in await session.scalars(select(StatusComponentState))}


# --- overrides ---------------------------------------------------------------------------------


async def add_override(
    *,
    session: AsyncSession,
    component: str,
    status: str,
    reason: str,
    expires_at: datetime | None,
    actor: str,
    now: datetime,
) -> StatusOverride:
    # one override per component: the new one replaces the old
    for old in await active_overrides(session=session, now=now):
        if old.component == component:
            old.lifted_at = now
    row = StatusOverride(
        component=component,
        status=status,
        reason=reason,
        expires_at=expires_at,
        created_by=actor,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def active_overrides(*, session: AsyncSession, now: datetime) -> list[StatusOverride]:
    rows = await session.scalars(
        select(StatusOverride)
        .where(
            StatusOverride.lifted_at.is_(None),
            or_(StatusOverride.expires_at.is_(None), StatusOverride.expires_at > now),
        )
        .order_by(StatusOverride.id)
    )
    return list(rows)


async def lift_override(*, session: AsyncSession, override_id: int, now: datetime) -> None:
    row = await session.get(StatusOverride, override_id)
    if row is None:
        raise NotFound(f"no override with id {override_id}")
    row.lifted_at = row.lifted_at or now


async def lift_overrides_of(
    *, session: AsyncSession, components: Sequence[str], now: datetime
) -> None:
    for row in await active_overrides(session=session, now=now):
        if row.component in components:
            row.lifted_at = now


def override_read(o: StatusOverride) -> OverrideRead:
    return OverrideRead(
        id=o.id,
        component=o.component,
        status=o.status,
        reason=o.reason,
        expires_at=o.expires_at,
        created_by=o.created_by,
        created_at=o.created_at,
    )


def override_windows(rows: Sequence[StatusOverride]) -> dict[str, list[Window]]:
    out: dict[str, list[Window]] = {}
    for o in rows:
        out.setdefault(o.component, []).append(
            Window(
                ComponentStatus(o.status),
                o.created_at.timestamp(),
                o.expires_at.timestamp() if o.expires_at else None,
            )
        )
    return out


# --- maintenance -------------------------------------------------------------------------------


async def add_maintenance(
    *,
    session: AsyncSession,
    name: str,
    body: str,
    components: Sequence[str],
    start: datetime,
    end: datetime,
    actor: str,
    now: datetime,
) -> StatusMaintenance:
    if end <= start:
        raise InvalidInput("scheduled_until must be after scheduled_for")
    if end - start > timedelta(days=31):
        raise InvalidInput("a maintenance window is at most 31 days long")
    row = StatusMaintenance(
        name=name,
        body=body,
        components=list(components),
        scheduled_for=start,
        scheduled_until=end,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def complete_maintenance(
    *, session: AsyncSession, maintenance_id: int, now: datetime
) -> StatusMaintenance:
    row = await session.get(StatusMaintenance, maintenance_id)
    if row is None:
        raise NotFound(f"no maintenance with id {maintenance_id}")
    row.completed_at = row.completed_at or now
    row.updated_at = now
    return row


async def list_maintenances(
    *, session: AsyncSession, since: datetime, limit: int = 100
) -> list[StatusMaintenance]:
    """Windows not over before `since` (upcoming, active and recently completed)."""
    rows = await session.scalars(
        select(StatusMaintenance)
        .where(StatusMaintenance.scheduled_until >= since)
        .order_by(StatusMaintenance.scheduled_for)
        .limit(limit)
    )
    return list(rows)


def maintenance_status(m: StatusMaintenance, now: datetime) -> str:
    if m.completed_at is not None and m.completed_at <= now:
        return "completed"
    if now < m.scheduled_for:
        return "scheduled"
    if now < m.scheduled_until:
        return "in_progress"
    return "completed"


def maintenance_read(m: StatusMaintenance, now: datetime) -> MaintenanceRead:
    return MaintenanceRead(
        id=m.id,
        name=m.name,
        body=m.body,
        components=m.components,
        scheduled_for=m.scheduled_for,
        scheduled_until=m.scheduled_until,
        completed_at=m.completed_at,
        status=maintenance_status(m, now),
    )


def maintenance_windows(rows: Sequence[StatusMaintenance]) -> dict[str, list[Window]]:
    out: dict[str, list[Window]] = {}
    for m in rows:
        end = m.scheduled_until
        if m.completed_at is not None and m.completed_at < end:
            end = m.completed_at
        for c in m.components:
            out.setdefault(c, []).append(
                Window(
                    ComponentStatus.under_maintenance, m.scheduled_for.timestamp(), end.timestamp()
                )
            )
    return out


# --- templates ---------------------------------------------------------------------------------


async def stored_templates(*, session: AsyncSession) -> dict[str, str]:
    return {t.scenario: t.body for t in await session.scalars(select(StatusTemplate))}


async def put_template(
    *, session: AsyncSession, scenario: str, body: str, actor: str, now: datetime
) -> None:
    row = await session.get(StatusTemplate, scenario)
    if row is None:
        session.add(StatusTemplate(scenario=scenario, body=body, updated_by=actor, updated_at=now))
    else:
        row.body, row.updated_by, row.updated_at = body, actor, now


async def delete_template(*, session: AsyncSession, scenario: str) -> None:
    row = await session.get(StatusTemplate, scenario)
    if row is not None:
        await session.delete(row)


# --- uptime ------------------------------------------------------------------------------------


async def route_day_rows(
    *, session: AsyncSession, routes: Sequence[str], start: int, end: int
) -> dict[str, list[tuple[int, int, int]]]:
    """`(bucket, requests, failed)` rows per route in [start, end): hour rollups before the
    hours watermark, minute rollups after it (as the telemetry queries read them)."""
    out: dict[str, list[tuple[int, int, int]]] = {r: [] for r in routes}
    if not routes:
        return out
    rolled = int(
        await session.scalar(select(TelemetryState.value).where(TelemetryState.name == HOURS_UNTIL))
        or 0
    )
    conn = await session.connection()
    table: type[TelemetryHour] | type[TelemetryMinute]
    for table, lo, hi in (
        (TelemetryHour, start, min(end, rolled)),
        (TelemetryMinute, max(start, rolled), end),
    ):
        if lo >= hi:
            continue
        stmt = select(table.key, table.bucket, table.requests, table.c5xx).where(
            table.dim == "route",
            table.key.in_(list(routes)),
            table.bucket >= lo,
            table.bucket < hi,
        )
        for key, bucket, requests, failed in (await conn.execute(stmt)).all():
            out[key].append((int(bucket), int(requests), int(failed)))
    return out


def merge_live(
    out: Mapping[str, list[tuple[int, int, int]]], live: Mapping[str, list[tuple[int, int, int]]]
) -> None:
    """Add the minutes not yet written as rollups (`route -> [(bucket, requests, failed)]`)."""
    for route, rows in live.items():
        if route in out:
            out[route].extend(rows)

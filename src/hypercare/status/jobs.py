"""The status page's loop: component states from live traffic, and the public snapshot.

Every `INTERVAL` seconds the loop
1. reads each component's routes from the live per-second windows the collector feeds
   (the same windows and the same failure classification detection uses), classifies,
   and applies hysteresis; a change is stored and written on the timeline of the open
   issue of those routes (and suggests a draft public incident);
2. applies overrides and maintenance windows (read from the store when something changed
   and every `RELOAD_EVERY` seconds) to get the state the page shows;
3. rebuilds the in-memory snapshot of every public document when anything shown changed;
   public requests are answered from it without touching the store;
4. reminds the responders of published incidents without a recent update.

API writes set `wake`, so a new incident or update is on the page on the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from hypercare.api.state import AppState
from hypercare.detection import jobs as detection_jobs
from hypercare.detection.live import LiveWindows
from hypercare.detection.rules import Metric
from hypercare.status import documents, service
from hypercare.status.config import StatusConfig
from hypercare.status.documents import ComponentView, IncidentView, PageData, PageInfo, UpdateView
from hypercare.status.rules import (
    ComponentStatus,
    DayUptime,
    TokenBucket,
    Tracked,
    Window,
    classify,
    effective,
    etag_of,
    impact_of,
    reading,
    reminder_due,
    render_template,
    routes_of,
    scenario_for,
    slug,
    step,
    uptime_days,
)
from hypercare.store.base import utcnow
from hypercare.telemetry import jobs as telemetry_jobs
from hypercare.triage.models import Issue

log = logging.getLogger("hypercare.status")

INTERVAL = 0.5  # seconds between evaluations
RELOAD_EVERY = 15.0  # seconds between store reads when nothing was written
UPTIME_EVERY = 60.0  # seconds between uptime reads (minutes close once a minute)
REMIND_EVERY = 30.0


@dataclass(frozen=True, slots=True)
class Served:
    body: bytes
    etag: str
    content_type: str


JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"


@dataclass
class StatusRuntime:
    """The status page's long-lived state, kept in `AppState.runtimes`."""

    config: StatusConfig
    routes: dict[str, list[str]]  # component -> its routes
    limiter: TokenBucket
    tracked: dict[str, Tracked] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    shown: dict[str, tuple[ComponentStatus, str]] = field(default_factory=dict)
    changed_at: dict[str, datetime] = field(default_factory=dict)
    overrides: dict[str, list[Window]] = field(default_factory=dict)
    windows: dict[str, list[Window]] = field(default_factory=dict)
    uptime: dict[str, list[DayUptime]] = field(default_factory=dict)
    incidents: list[IncidentView] = field(default_factory=list)
    maintenances: list[IncidentView] = field(default_factory=list)
    templates: dict[str, str] = field(default_factory=dict)
    served: dict[str, Served] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    loaded_at: float = 0.0
    uptime_at: float = 0.0
    reminded_at: float = 0.0
    started_at: datetime = field(default_factory=utcnow)
    snapshot_at: datetime = field(default_factory=utcnow)
    builds: int = 0
    expected_signals: int = 0

    def under_maintenance(self, route: str, now: float | None = None) -> bool:
        """Whether `route` belongs to a component in a maintenance window right now."""
        at = time.time() if now is None else now
        for component, routes in self.routes.items():
            if route in routes:
                for w in self.windows.get(component, ()):
                    if w.start <= at and (w.end is None or at < w.end):
                        return True
        return False

    def template(self, scenario: str) -> str:
        return self.templates.get(scenario) or self.config.template(scenario)


def runtime(state: AppState) -> StatusRuntime:
    found = state.runtimes.get(StatusRuntime)
    if found is not None:
        return found
    cfg = state.config.status
    known = {name: dict(tags) for name, tags in state.config.route_tags().items()}
    made = StatusRuntime(
        config=cfg,
        routes={c.name: routes_of(c.routes, c.tags, known) for c in cfg.components},
        limiter=TokenBucket(cfg.rate_limit),
    )
    for c in cfg.components:
        made.tracked[c.name] = Tracked(ComponentStatus.operational, time.time())
        made.shown[c.name] = (ComponentStatus.operational, "traffic")
        made.changed_at[c.name] = made.started_at
    state.runtimes.put(made)
    # with no store read yet, the page says what it knows (all operational, no incidents)
    build(state, made)
    return made


def live_windows(state: AppState) -> LiveWindows:
    """The per-second route windows: detection's when it runs, else the status page's own
    (fed by the same collector observer)."""
    if state.config.detection.enabled:
        return detection_jobs.runtime(state).live
    return state.runtimes.setdefault(LiveWindows, lambda: LiveWindows(keep_seconds=600))


def install(state: AppState) -> None:
    """Hook the status page into ingest and detection (called once by the app factory)."""
    rt = runtime(state)
    if not state.config.detection.enabled:
        telemetry_jobs.collector_of(state).observers.append(live_windows(state).observe)
    elif rt.config.maintenance_signals == "expected":
        detection_jobs.runtime(state).expected = rt.under_maintenance


def _baselines(state: AppState, routes: list[str], now: float) -> dict[str, float]:
    if not state.config.detection.enabled:
        return {}
    detector = detection_jobs.runtime(state).detector
    out = {}
    for r in routes:
        value = detector.baseline(r, Metric.p95, now).value
        if value:
            out[r] = value
    return out


# --- one turn ---------------------------------------------------------------------------------


async def evaluate(state: AppState, rt: StatusRuntime, now: float) -> bool:
    """Classify every component from live traffic; store the changes. True when a shown
    state changed."""
    thresholds = rt.config.thresholds.to_rules()
    hyst = rt.config.hysteresis
    live = live_windows(state)
    changes: list[tuple[str, ComponentStatus, ComponentStatus, str]] = []
    start = now - thresholds.window_seconds
    for name, routes in rt.routes.items():
        stats = [live.stats(r, start, now) for r in routes]
        observed, why = classify(reading(stats, _baselines(state, routes, now)), thresholds)
        before = rt.tracked.get(name, Tracked())
        after = step(
            before,
            observed,
            now,
            hyst.raise_after.total_seconds(),
            hyst.clear_after.total_seconds(),
        )
        rt.tracked[name] = after
        if after.status != before.status:
            rt.reasons[name] = why
            changes.append((name, before.status, after.status, why))
        # a component's baselines may be recomputed (once a minute): a turn for the page
        await asyncio.sleep(0)
    if changes:
        at = datetime.fromtimestamp(now, UTC)
        async with state.sessions() as session, session.begin():
            for name, old, new, why in changes:
                issue_id = await service.record_component_change(
                    session=session,
                    component=name,
                    routes=rt.routes[name],
                    old=old,
                    new=new,
                    reason=why,
                    now=at,
                )
                log.info("status: %s %s -> %s (%s)", name, old.value, new.value, why)
                if new is ComponentStatus.operational:
                    await service.close_drafts(session=session, components=[name], now=at)
                elif rt.config.suggest_incidents:
                    body = render_template(
                        rt.template(scenario_for(new)),
                        _variables(rt, [name], at, impact_of([new])),
                    )
                    await service.suggest_incident(
                        session=session,
                        component=name,
                        status=new,
                        impact=impact_of([new]),
                        body=body,
                        issue_id=issue_id,
                        now=at,
                    )
        rt.wake.set()  # a suggested draft is not public, but overrides may need a reload
    return apply(rt, now)


def apply(rt: StatusRuntime, now: float) -> bool:
    """The shown state of every component (override > maintenance > traffic)."""
    changed = False
    for name in rt.routes:
        shown = effective(
            rt.tracked[name].status, now, rt.overrides.get(name, ()), rt.windows.get(name, ())
        )
        if rt.shown.get(name) != shown:
            rt.shown[name] = shown
            rt.changed_at[name] = datetime.fromtimestamp(now, UTC)
            changed = True
    return changed


def _variables(
    rt: StatusRuntime, components: list[str], start: datetime, impact: str, **extra: Any
) -> dict[str, Any]:
    return {
        "component": ", ".join(components) or "our service",
        "components": components,
        "start_time": start.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "impact": impact,
        "page_name": rt.config.page.name,
        "status": ", ".join(rt.shown[c][0].value for c in components if c in rt.shown),
        **extra,
    }


def variables(
    rt: StatusRuntime,
    components: list[str],
    start: datetime,
    impact: str,
    workaround: str | None = None,
    next_update_in_minutes: int | None = None,
) -> dict[str, Any]:
    nxt = ""
    if next_update_in_minutes:
        nxt = (utcnow() + timedelta(minutes=next_update_in_minutes)).strftime("%Y-%m-%d %H:%M UTC")
    return _variables(
        rt, components, start, impact, workaround=workaround or "", next_update_time=nxt
    )


async def reload(state: AppState, rt: StatusRuntime, now: float) -> None:
    """Overrides, maintenance windows, published incidents and templates from the store."""
    at = datetime.fromtimestamp(now, UTC)
    history = at - timedelta(days=rt.config.page.history_days)
    ids = {c.name: slug(c.name) for c in rt.config.components}
    async with state.sessions() as session:
        rt.overrides = service.override_windows(
            await service.active_overrides(session=session, now=at)
        )
        maint = await service.list_maintenances(session=session, since=history)
        rt.windows = service.maintenance_windows(maint)
        rt.templates = await service.stored_templates(session=session)
        incidents = await service.list_incidents(
            session=session, published_only=True, since=history, limit=200
        )
        updates = await service.updates_of(session=session, incident_ids=[i.id for i in incidents])
        if not rt.loaded_at:
            for name, row in (await service.component_states(session=session)).items():
                if name in rt.tracked and row.status in ComponentStatus.__members__:
                    rt.tracked[name] = Tracked(ComponentStatus(row.status), row.since.timestamp())
                    rt.changed_at[name] = row.since
                    rt.reasons[name] = row.reason
    rt.incidents = [
        IncidentView(
            id=str(i.id),
            name=i.name,
            status=i.status,
            impact=i.impact,
            created_at=i.published_at or i.created_at,
            updated_at=i.updated_at,
            monitoring_at=i.monitoring_at,
            resolved_at=i.resolved_at,
            components=[ids[c] for c in i.components if c in ids],
            updates=[
                UpdateView(
                    id=f"{i.id}-{u.id}",
                    status=u.status,
                    body=u.body,
                    created_at=u.created_at,
                    affected_components=[
                        {**a, "code": ids.get(str(a.get("name")), a.get("code"))}
                        for a in u.affected_components
                    ],
                )
                for u in updates.get(i.id, [])
                # drafts written before publication are not public history
                if i.published_at is None or u.created_at >= i.published_at
            ],
        )
        for i in incidents
    ]
    rt.maintenances = [_maintenance_view(rt, m, at, ids) for m in maint]
    rt.loaded_at = now


def _maintenance_view(
    rt: StatusRuntime, m: Any, now: datetime, ids: Mapping[str, str]
) -> IncidentView:
    status = service.maintenance_status(m, now)
    names = list(m.components)
    updates = [UpdateView(f"m{m.id}-0", "scheduled", m.body or m.name, m.created_at)]
    if status in ("in_progress", "completed") and m.scheduled_for <= now:
        text = render_template(
            rt.template("maintenance_start"), _variables(rt, names, m.scheduled_for, "none")
        )
        updates.append(UpdateView(f"m{m.id}-1", "in_progress", text, m.scheduled_for))
    if status == "completed":
        end = min(m.completed_at or m.scheduled_until, m.scheduled_until)
        text = render_template(rt.template("maintenance_end"), _variables(rt, names, end, "none"))
        updates.append(UpdateView(f"m{m.id}-2", "completed", text, end))
    updates.reverse()
    return IncidentView(
        id=f"m{m.id}",
        name=m.name,
        status=status,
        impact="none",
        created_at=m.created_at,
        updated_at=max(u.created_at for u in updates),
        monitoring_at=None,
        resolved_at=updates[0].created_at if status == "completed" else None,
        components=[ids[c] for c in names if c in ids],
        updates=updates,
        scheduled_for=m.scheduled_for,
        scheduled_until=m.scheduled_until,
    )


async def load_uptime(state: AppState, rt: StatusRuntime, now: float) -> None:
    """Per-day uptime of each component over the page's history, from the rollups and the
    minutes still in the live store."""
    days = rt.config.page.history_days
    today = int(now // 86400) * 86400
    first = today - (days - 1) * 86400
    all_routes = sorted({r for rs in rt.routes.values() for r in rs})
    async with state.sessions() as session:
        rows = await service.route_day_rows(
            session=session, routes=all_routes, start=first, end=today + 86400
        )
    pending = telemetry_jobs.live_of(state).pending
    live: dict[str, list[tuple[int, int, int]]] = {}
    for (dim, key, bucket), agg in list(pending.items()):
        if dim == "route" and key in rows:
            live.setdefault(key, []).append((bucket, agg.requests, agg.c5xx))
    service.merge_live(rows, live)
    for name, routes in rt.routes.items():
        merged = [row for r in routes for row in rows.get(r, [])]
        rt.uptime[name] = uptime_days(merged, first, days)
    rt.uptime_at = now


def build(state: AppState, rt: StatusRuntime) -> None:
    """Render every public document into the snapshot (only what was published)."""
    _install(rt, {path: make() for path, make, _ in _documents(_page_data(state, rt))})


async def rebuild(state: AppState, rt: StatusRuntime) -> None:
    """`build`, without holding the console's event loop (which answers the page) for the
    whole of it: a turn of the loop after each JSON document, and the HTML and feeds (a
    template render of a page with incidents takes 10–20 ms of CPU) rendered on a worker
    thread. The page is served from the previous snapshot until the new one replaces it
    at once; the documents are the same as `build`'s."""
    served: dict[str, Served] = {}
    for path, make, templated in _documents(_page_data(state, rt)):
        served[path] = await asyncio.to_thread(make) if templated else make()
        await asyncio.sleep(0)
    _install(rt, served)


def _page_data(state: AppState, rt: StatusRuntime) -> PageData:
    cfg = rt.config
    url = (cfg.page.url or (state.console_url or "")).rstrip("/")
    today = int(time.time() // 86400) * 86400
    no_data = uptime_days([], today - (cfg.page.history_days - 1) * 86400, cfg.page.history_days)
    return PageData(
        page=PageInfo(
            id=slug(cfg.page.name),
            name=cfg.page.name,
            url=url,
            time_zone=cfg.page.time_zone,
            logo=cfg.page.logo,
            colours={str(k): v for k, v in cfg.page.colours.items()},
            subscribe=state.config.comms.subscribers.enabled,
        ),
        components=[
            ComponentView(
                id=slug(c.name),
                name=c.name,
                description=c.description,
                group=c.group,
                position=c.order or i + 1,
                status=rt.shown[c.name][0],
                created_at=rt.started_at,
                updated_at=rt.changed_at[c.name],
                days=rt.uptime.get(c.name) or no_data,
            )
            for i, c in enumerate(cfg.components)
        ],
        incidents=rt.incidents,
        maintenances=rt.maintenances,
        updated_at=max(
            [rt.started_at, *rt.changed_at.values()] + [i.updated_at for i in rt.incidents]
        ),
        history_days=cfg.page.history_days,
    )


def _documents(data: PageData) -> Iterator[tuple[str, Callable[[], Served], bool]]:
    """(path, how to make its answer, whether that is a template render) for every public
    document of `data`."""
    for path, doc in documents.documents(data).items():
        yield f"/api/v2/{path}", partial(_served, documents.dumps(doc), JSON), False
    for path, template, kind in (
        ("/status", "status.html", HTML),
        ("/status/history", "history.html", HTML),
        ("/status/feed.rss", "feed.rss", "application/rss+xml; charset=utf-8"),
        ("/status/feed.atom", "feed.atom", "application/atom+xml; charset=utf-8"),
        ("/status/style.css", "style.css", "text/css; charset=utf-8"),
    ):
        yield path, partial(_rendered, template, data, kind), True


def _served(body: bytes, kind: str) -> Served:
    return Served(body, etag_of(body), kind)


def _rendered(template: str, data: PageData, kind: str) -> Served:
    return _served(documents.render(template, data), kind)


def _install(rt: StatusRuntime, served: dict[str, Served]) -> None:
    served["/status/"] = served["/status"]
    rt.served = served
    rt.snapshot_at = utcnow()
    rt.builds += 1


async def remind(state: AppState, rt: StatusRuntime, now: float) -> None:
    reminders = {str(k): v.total_seconds() for k, v in rt.config.reminders.items()}
    at = datetime.fromtimestamp(now, UTC)
    async with state.sessions() as session, session.begin():
        for incident in await service.list_incidents(
            session=session, published_only=True, unresolved=True, limit=200
        ):
            if incident.issue_id is None or incident.reminded_at is not None:
                continue
            issue = await session.get(Issue, incident.issue_id)
            last = (incident.last_update_at or incident.created_at).timestamp()
            if issue is not None and reminder_due(last, issue.priority, reminders, now):
                minutes = int((now - last) // 60)
                await service.remind(session=session, incident=incident, minutes=minutes, now=at)


async def turn(state: AppState, rt: StatusRuntime, now: float) -> None:
    """One pass of the loop (tests call it directly)."""
    reloaded = rt.wake.is_set() or now - rt.loaded_at >= RELOAD_EVERY
    rt.wake.clear()
    if reloaded:
        await reload(state, rt, now)
    uptime = now - rt.uptime_at >= UPTIME_EVERY
    if uptime:
        await load_uptime(state, rt, now)
    changed = await evaluate(state, rt, now)
    if reloaded or uptime or changed:
        await rebuild(state, rt)
    if now - rt.reminded_at >= REMIND_EVERY:
        rt.reminded_at = now
        await remind(state, rt, now)


async def run_status(state: AppState, stop: asyncio.Event) -> None:
    rt = runtime(state)
    while not stop.is_set():
        try:
            await turn(state, rt, time.time())
        except Exception:
            # the page must outlive a passing store error; the next turn retries
            log.exception("status page pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.wake.wait(), timeout=INTERVAL)

"""Database work of launches: their state, the SLO numbers from the rollups, the facts the
exit criteria are evaluated on and the evaluation history. Never commits."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import delete as sa_delete
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.config import HypercareConfig
from hypercare.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from hypercare.feedback.models import Signal
from hypercare.feedback.scores import csat, nps
from hypercare.feedback.service import not_test, survey_scores
from hypercare.launch import rules
from hypercare.launch.config import LaunchConfig, SloConfig, reference_errors
from hypercare.launch.models import (
    EvaluationRead,
    LaunchDef,
    LaunchEvaluation,
    LaunchRead,
    LaunchRecord,
    LaunchSpec,
    StateChange,
)
from hypercare.launch.report import DayFeedback, FailingApi, ReportData, ReportIssue
from hypercare.launch.rules import IssueFact, LaunchState, Point, Scope
from hypercare.telemetry import query
from hypercare.telemetry.histogram import bucket_of, bucket_value
from hypercare.telemetry.live import LiveStore
from hypercare.triage.models import Issue

log = logging.getLogger("hypercare.launch")


def route_components(config: HypercareConfig) -> dict[str, str | None]:
    return {name: tags.get("component") for name, tags in config.route_tags().items()}


# --- the launches: declared in the config file or made through the API --------------------

Source = Literal["config", "api"]
CONFIG_SOURCE: Source = "config"
API_SOURCE: Source = "api"


@dataclass(frozen=True, slots=True)
class Declared:
    """A launch and where it comes from: ``config`` (the file) or ``api`` (`LaunchDef`)."""

    launch: LaunchConfig
    source: Source
    row: LaunchDef | None = None


def _parse(row: LaunchDef) -> LaunchConfig | None:
    try:
        return LaunchConfig.model_validate(row.spec)
    except ValidationError:
        # stored valid; only a change of the time-zone database can make it invalid
        log.warning("launch %r made through the API no longer validates; skipped", row.name)
        return None


async def declared(*, session: AsyncSession, config: HypercareConfig) -> list[Declared]:
    """Every launch: the config file's in its order, then those made through the API by
    start. A name the file declares shadows an API-made launch of that name."""
    out = [Declared(launch, CONFIG_SOURCE) for launch in config.launches]
    taken = {launch.name for launch in config.launches}
    made = []
    for row in await session.scalars(select(LaunchDef).order_by(LaunchDef.id)):
        launch = _parse(row)
        if launch is not None and launch.name not in taken:
            made.append(Declared(launch, API_SOURCE, row))
    made.sort(key=lambda d: (d.launch.start, d.launch.name))
    return [*out, *made]


async def launches(*, session: AsyncSession, config: HypercareConfig) -> list[LaunchConfig]:
    return [d.launch for d in await declared(session=session, config=config)]


async def locate(*, session: AsyncSession, config: HypercareConfig, name: str) -> Declared:
    for launch in config.launches:
        if launch.name == name:
            return Declared(launch, CONFIG_SOURCE)
    row = await def_of(session=session, name=name)
    made = _parse(row) if row is not None else None
    if row is not None and made is not None:
        return Declared(made, API_SOURCE, row)
    names = [d.launch.name for d in await declared(session=session, config=config)]
    known = ", ".join(names) or "none (add launches: to the config or POST /api/v1/launches)"
    raise NotFound(f"no launch named {name!r}; known launches: {known}")


async def find(*, session: AsyncSession, config: HypercareConfig, name: str) -> LaunchConfig:
    return (await locate(session=session, config=config, name=name)).launch


async def def_of(*, session: AsyncSession, name: str) -> LaunchDef | None:
    found: LaunchDef | None = await session.scalar(select(LaunchDef).where(LaunchDef.name == name))
    return found


def _spec_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(["body", *(str(p) for p in e["loc"])]),
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors(include_url=False)
    ]


def _invalid(details: list[dict[str, Any]]) -> InvalidInput:
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return InvalidInput(f"the launch is not valid: {summary}", details=details)


def check_spec(config: HypercareConfig, spec: Mapping[str, Any]) -> LaunchConfig:
    """`spec` validated as a ``launches:`` entry of `config`: its own shape, then the routes,
    components, metrics and priorities it names (`reference_errors`, as for the file).
    InvalidInput (422) names each field as ``body.<path>`` and how to fix it."""
    try:
        launch: LaunchConfig = LaunchSpec.model_validate(spec)
    except ValidationError as exc:
        raise _invalid(_spec_errors(exc)) from None
    problems = reference_errors(
        [launch],
        routes=route_components(config),
        priorities=[lv.level for lv in config.triage.matrix],
    )
    if problems:
        raise _invalid(
            [
                {
                    "field": ".".join(["body", *(str(p) for p in path[2:])]),
                    "message": message,
                    "type": "unknown_reference",
                }
                for path, message in problems
            ]
        )
    return launch


async def _name_free(*, session: AsyncSession, config: HypercareConfig, name: str) -> None:
    if any(launch.name == name for launch in config.launches):
        raise Conflict(f"a launch named {name!r} is declared in the config file; pick another name")
    if await def_of(session=session, name=name) is not None:
        raise Conflict(f"a launch named {name!r} already exists (made through the API)")
    # a state or evaluations left by an earlier launch of that name (since removed from the
    # file) would be taken as the new launch's
    if await record_of(session=session, name=name) is not None or await session.scalar(
        select(LaunchEvaluation.id).where(LaunchEvaluation.launch == name).limit(1)
    ):
        raise Conflict(
            f"the name {name!r} has a state or evaluations kept from an earlier launch; "
            "pick another name"
        )


async def create(
    *,
    session: AsyncSession,
    config: HypercareConfig,
    spec: Mapping[str, Any],
    actor: str,
    now: datetime,
) -> Declared:
    """Store a launch made through the API; 422 when invalid, 409 when its name is taken."""
    launch = check_spec(config, spec)
    await _name_free(session=session, config=config, name=launch.name)
    row = LaunchDef(
        name=launch.name,
        spec=dict(spec),
        created_at=now,
        created_by=actor,
        updated_at=now,
        updated_by=actor,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:  # the same name created at the same moment
        raise Conflict(f"a launch named {launch.name!r} already exists") from None
    return Declared(launch, API_SOURCE, row)


async def _made(*, session: AsyncSession, config: HypercareConfig, name: str) -> Declared:
    found = await locate(session=session, config=config, name=name)
    if found.row is None:
        raise Conflict(
            f"launch {name!r} is declared in the config file; edit it there",
            details={"source": CONFIG_SOURCE},
        )
    return found


async def update(
    *,
    session: AsyncSession,
    config: HypercareConfig,
    name: str,
    changes: Mapping[str, Any],
    actor: str,
    now: datetime,
) -> Declared:
    """Merge `changes` into an API-made launch (top-level keys replace, ``null`` restores
    the default) and validate the result as on creation. The name is kept (its state and
    history hang on it); an exited launch is kept as it was evaluated."""
    found = await _made(session=session, config=config, name=name)
    assert found.row is not None
    if "name" in changes and changes["name"] != name:
        raise _invalid(
            [
                {
                    "field": "body.name",
                    "message": "a launch cannot be renamed; create a new launch instead",
                    "type": "rename",
                }
            ]
        )
    record = await record_of(session=session, name=name)
    if state_of(found.launch, record, now) is LaunchState.exited:
        raise Conflict(f"launch {name!r} is exited; its definition stays as it was evaluated")
    spec = {**found.row.spec}
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    launch = check_spec(config, spec)
    found.row.spec = spec
    found.row.updated_at = now
    found.row.updated_by = actor
    await session.flush()
    return Declared(launch, API_SOURCE, found.row)


async def delete(
    *, session: AsyncSession, config: HypercareConfig, name: str, now: datetime
) -> None:
    """Remove an API-made launch that has not run: still planned, or with no evaluation
    kept. Its state record and evaluations go with it, so the name is free again. A launch
    that ran keeps its history: move it to exited instead (409 says so)."""
    found = await _made(session=session, config=config, name=name)
    record = await record_of(session=session, name=name)
    current = state_of(found.launch, record, now)
    kept = await session.scalar(
        select(func.count()).select_from(LaunchEvaluation).where(LaunchEvaluation.launch == name)
    )
    if current is not LaunchState.planned and kept:
        raise Conflict(
            f"launch {name!r} is {current.value} and has {kept} evaluation(s) in its history; "
            "only a planned launch or one never evaluated can be deleted (move it to exited "
            "instead)",
            details={"state": current.value, "evaluations": kept},
        )
    await session.execute(sa_delete(LaunchEvaluation).where(LaunchEvaluation.launch == name))
    await session.execute(sa_delete(LaunchRecord).where(LaunchRecord.name == name))
    await session.delete(found.row)
    await session.flush()


# --- state ---------------------------------------------------------------------------------


async def record_of(*, session: AsyncSession, name: str) -> LaunchRecord | None:
    found: LaunchRecord | None = await session.scalar(
        select(LaunchRecord).where(LaunchRecord.name == name)
    )
    return found


async def records(*, session: AsyncSession) -> dict[str, LaunchRecord]:
    return {r.name: r for r in await session.scalars(select(LaunchRecord))}


def end_of(launch: LaunchConfig, record: LaunchRecord | None) -> datetime:
    return record.end_at if record is not None and record.end_at is not None else launch.planned_end


def state_of(launch: LaunchConfig, record: LaunchRecord | None, now: datetime) -> LaunchState:
    return rules.effective_state(
        record.state if record is not None else None, launch.start, end_of(launch, record), now
    )


def to_read(
    launch: LaunchConfig, record: LaunchRecord | None, now: datetime, source: Source = CONFIG_SOURCE
) -> LaunchRead:
    state = state_of(launch, record, now)
    return LaunchRead(
        name=launch.name,
        source=source,
        state=state,
        start=launch.start,
        end=end_of(launch, record),
        planned_end=launch.planned_end,
        time_zone=launch.time_zone,
        routes=list(launch.routes),
        components=list(launch.components),
        objectives=list(launch.objectives),
        kpis=[k.model_dump(mode="json") for k in launch.kpis],
        roster={a: r.model_dump(mode="json") for a, r in launch.roster.items()},
        exit_criteria=[
            c.model_dump(mode="json", exclude_none=True, by_alias=True)
            for c in launch.exit_criteria
        ],
        allowed_transitions=sorted(rules.TRANSITIONS[state]),
        state_history=list(record.history) if record is not None else [],
    )


async def change_state(
    *,
    session: AsyncSession,
    launch: LaunchConfig,
    change: StateChange,
    actor: str,
    now: datetime,
) -> LaunchRecord:
    record = await record_of(session=session, name=launch.name)
    current = state_of(launch, record, now)
    why = rules.transition_error(current, change.to, new_end=change.end, start=launch.start)
    if why is not None:
        raise InvalidTransition(why, details={"from": current.value, "to": change.to.value})
    if record is None:
        record = LaunchRecord(name=launch.name, state=current.value, changed_by=actor, history=[])
        session.add(record)
    record.state = change.to.value
    if change.to is LaunchState.extended:
        record.end_at = change.end
    record.changed_at = now
    record.changed_by = actor
    record.note = change.note
    record.history = [
        *record.history,
        {
            "at": now.isoformat(),
            "from": current.value,
            "to": change.to.value,
            "by": actor,
            "note": change.note,
            **({"end": change.end.isoformat()} if change.end is not None else {}),
        },
    ]
    await session.flush()
    return record


# --- SLO numbers -----------------------------------------------------------------------------


def good_limit(threshold_ms: float) -> int:
    """The highest histogram bucket whose calls count as within `threshold_ms`."""
    idx = bucket_of(threshold_ms)
    while bucket_value(idx) > threshold_ms:
        idx -= 1
    return idx


async def slo_points(
    *,
    session: AsyncSession,
    live: LiveStore,
    slos: Sequence[SloConfig],
    route_components: Mapping[str, str | None],
    start: float,
    end: float,
    step: int,
) -> dict[str, list[Point]]:
    """Good/bad calls of each SLO per `step` (60 or 3600 s) over [start, end), from the
    rollups (hour rollups where whole hours allow it) and the live minutes. Latency SLOs
    read only each row's calls under their threshold (`query.slo_counts`), never a merged
    histogram: decoding histograms was most of a report's time."""
    if not slos:
        return {}
    start = start // step * step
    end = max(end, start + step)
    limit_of = {
        slo.name: good_limit(slo.threshold.total_seconds() * 1000)
        for slo in slos
        if slo.kind == "latency" and slo.threshold is not None
    }
    keys: set[str] = set()
    limits: dict[str, set[int]] = {}
    for slo in slos:
        for route in rules.slo_routes(slo, route_components):
            keys.add(route)
            if slo.name in limit_of:
                limits.setdefault(route, set()).add(limit_of[slo.name])
    counts = await query.slo_counts(
        session,
        live,
        dim="route",
        start=start,
        end=end,
        step=step,
        keys=keys,
        limits={r: sorted(ls) for r, ls in limits.items()},
    )
    by_route: dict[str, list[tuple[int, query.SloCounts]]] = {}
    for (route, at), c in counts.items():
        by_route.setdefault(route, []).append((at, c))
    out: dict[str, list[Point]] = {}
    for slo in slos:
        points: dict[int, list[int]] = {}
        limit = limit_of.get(slo.name)
        for route in rules.slo_routes(slo, route_components):
            for at, c in by_route.get(route, ()):
                if not c.requests:
                    continue
                if limit is not None:
                    bad = c.requests - c.upto.get(limit, 0)
                else:
                    bad = c.c5xx + (c.c4xx if slo.count_4xx else 0)
                slot = points.setdefault(at, [0, 0])
                slot[0] += c.requests
                slot[1] += max(0, bad)
        out[slo.name] = [Point(at, step, t, b) for at, (t, b) in sorted(points.items())]
    return out


async def slo_statuses(
    *,
    session: AsyncSession,
    live: LiveStore,
    config: HypercareConfig,
    launch: LaunchConfig,
    end: datetime,
    now: datetime,
    over: timedelta | None = None,
) -> dict[str, rules.SloStatus]:
    """Each SLO over its rolling window (or `over`), ending now."""
    if not launch.slos:
        return {}
    windows = {
        s.name: (over or rules.slo_window(s, launch.start, end)).total_seconds()
        for s in launch.slos
    }
    t = now.timestamp()
    points = await slo_points(
        session=session,
        live=live,
        slos=launch.slos,
        route_components=route_components(config),
        start=t - max(windows.values()),
        end=t,
        step=3600,
    )
    return {
        s.name: rules.slo_status(s, points.get(s.name, []), now=t, window=windows[s.name])
        for s in launch.slos
    }


async def burn_points(
    *,
    session: AsyncSession,
    live: LiveStore,
    slos: Sequence[SloConfig],
    route_components: Mapping[str, str | None],
    now: float,
) -> dict[str, list[Point]]:
    """Minute points since the start of the hour before the current one, hour points before
    that, back over the longest burn window: the 5 m, 30 m and 1 h windows are exact, the 6 h
    and 3 d ones hour-grained at their far end (the rolled hours are read instead of 360 or
    4,320 minute rows per route)."""
    cut = int((now - 3600) // 3600 * 3600)
    hours = await slo_points(
        session=session,
        live=live,
        slos=slos,
        route_components=route_components,
        start=cut - rules.LONGEST_WINDOW,
        end=cut,
        step=3600,
    )
    minutes = await slo_points(
        session=session,
        live=live,
        slos=slos,
        route_components=route_components,
        start=cut,
        end=now + 60,
        step=60,
    )
    return {
        s.name: [*(p for p in hours.get(s.name, []) if p.start < cut), *minutes.get(s.name, [])]
        for s in slos
    }


# --- issues and facts --------------------------------------------------------------------------


_ISSUE_COLUMNS = (
    Issue.id,
    Issue.title,
    Issue.priority,
    Issue.status,
    Issue.created_at,
    Issue.route,
    Issue.component,
    Issue.sla_state,
    Issue.impact_started_at,
    Issue.detected_at,
    Issue.acknowledged_at,
    Issue.resolved_at,
)


async def issues_in_scope(*, session: AsyncSession, scope: Scope) -> list[Any]:
    """The launch's issues as rows of `_ISSUE_COLUMNS` (no ORM objects: a launch has
    hundreds)."""
    stmt = select(*_ISSUE_COLUMNS).where(
        Issue.created_at >= scope.start, Issue.created_at < scope.end
    )
    if not scope.everything:
        conds = []
        if scope.routes:
            conds.append(Issue.route.in_(sorted(scope.routes)))
        if scope.components:
            conds.append(Issue.component.in_(sorted(scope.components)))
        stmt = stmt.where(or_(*conds))
    return list((await session.execute(stmt.order_by(Issue.id))).all())


def fact_of(issue: Any) -> IssueFact:
    return IssueFact(
        id=issue.id,
        title=issue.title,
        priority=issue.priority,
        status=issue.status,
        created_at=issue.created_at,
        route=issue.route,
        component=issue.component,
    )


async def load_facts(
    *,
    session: AsyncSession,
    live: LiveStore,
    config: HypercareConfig,
    launch: LaunchConfig,
    end: datetime,
    now: datetime,
    hour_points: Mapping[str, Sequence[Point]] | None = None,
) -> rules.Facts:
    """The facts the launch's criteria need. `hour_points`, hourly SLO points already read
    (by a report) back over every `slo_met` look-back, spares reading them again."""
    comps = route_components(config)
    scope = rules.scope_of(launch, max(end, now + timedelta(seconds=1)), comps)
    issues = [fact_of(i) for i in await issues_in_scope(session=session, scope=scope)]
    facts = rules.Facts(now=now, issues=issues, start=launch.start)
    for c in launch.exit_criteria:
        if c.slo_met is not None:
            seconds = int(c.slo_met.for_.total_seconds())
            if seconds in facts.slo_over:
                continue
            if hour_points is not None:
                t = now.timestamp()
                facts.slo_over[seconds] = {
                    s.name: rules.slo_status(s, hour_points.get(s.name, []), now=t, window=seconds)
                    for s in launch.slos
                }
            else:
                facts.slo_over[seconds] = await slo_statuses(
                    session=session,
                    live=live,
                    config=config,
                    launch=launch,
                    end=end,
                    now=now,
                    over=c.slo_met.for_,
                )
        if c.metric is not None:
            m = c.metric
            key = (m.route, m.metric, int(m.window.total_seconds()))
            if key not in facts.metrics:
                t = now.timestamp()
                aggs = await query.collect(
                    session,
                    live,
                    dim="route",
                    start=t - key[2],
                    end=t,
                    key=m.route,
                    histograms=("total", "upstream", "gateway"),
                )
                agg = next(iter(aggs.values()), None)
                facts.metrics[key] = query.metric(agg, m.metric, float(key[2]))
    windows = [b.window for c in launch.exit_criteria for b in (c.nps, c.csat) if b is not None]
    if windows:
        facts.scores = await survey_scores(session=session, start=now - max(windows), end=now)
    return facts


async def exit_check(
    *,
    session: AsyncSession,
    live: LiveStore,
    config: HypercareConfig,
    name: str,
    now: datetime,
    store: bool = True,
) -> rules.Scorecard:
    """Evaluate the exit criteria of launch `name` on live data; kept in the history when
    `store` (and something changed since the last evaluation, or an hour went by)."""
    launch = await find(session=session, config=config, name=name)
    record = await record_of(session=session, name=name)
    end = end_of(launch, record)
    facts = await load_facts(
        session=session, live=live, config=config, launch=launch, end=end, now=now
    )
    card = rules.scorecard(launch, state_of(launch, record, now).value, facts)
    if store:
        await keep_evaluation(session=session, card=card)
    return card


KEEP_UNCHANGED = timedelta(hours=1)


async def keep_evaluation(*, session: AsyncSession, card: rules.Scorecard) -> None:
    """Store an evaluation when its outcome (which criteria pass) changed since the last
    one, or the last one is an hour old: the history shows every change without a row
    per page view."""
    last = await session.scalar(
        select(LaunchEvaluation)
        .where(LaunchEvaluation.launch == card.launch)
        .order_by(LaunchEvaluation.at.desc(), LaunchEvaluation.id.desc())
        .limit(1)
    )
    outcome = [r.passed for r in card.results]
    if (
        last is not None
        and [r.get("passed") for r in last.results] == outcome
        and card.at - last.at < KEEP_UNCHANGED
    ):
        return
    session.add(
        LaunchEvaluation(
            launch=card.launch,
            at=card.at,
            passed=card.passed,
            passing=card.passing,
            criteria=len(card.results),
            results=[r.as_dict() for r in card.results],
        )
    )
    await session.flush()


async def evaluations(*, session: AsyncSession, name: str, limit: int = 50) -> list[EvaluationRead]:
    rows = await session.scalars(
        select(LaunchEvaluation)
        .where(LaunchEvaluation.launch == name)
        .order_by(LaunchEvaluation.at.desc(), LaunchEvaluation.id.desc())
        .limit(limit)
    )
    return [
        EvaluationRead(
            id=r.id,
            at=r.at,
            passed=r.passed,
            passing=r.passing,
            criteria=r.criteria,
            results=r.results,
        )
        for r in rows
    ]


# --- reports -----------------------------------------------------------------------------------

TOP_FAILING = 10


async def load_report(
    *,
    session: AsyncSession,
    live: LiveStore,
    config: HypercareConfig,
    name: str,
    kind: str,
    now: datetime,
) -> ReportData:
    """Everything a report shows. daily: the last 24 h; final: the launch from its start
    to its end (or now, if earlier)."""
    if kind not in ("daily", "final"):
        raise InvalidInput(f"unknown report kind {kind!r}; use daily or final")
    launch = await find(session=session, config=config, name=name)
    record = await record_of(session=session, name=name)
    end = end_of(launch, record)
    stop = min(end, now) if kind == "final" else now
    begin = launch.start if kind == "final" else now - timedelta(days=1)
    if stop <= begin:
        stop = begin + timedelta(minutes=1)
    comps = route_components(config)
    scope = rules.scope_of(launch, stop, comps)
    scope = Scope(begin if kind == "daily" else scope.start, stop, scope.routes, scope.components)
    issues = await issues_in_scope(session=session, scope=scope)
    sources: dict[int, str] = {}
    if issues:
        rows = await session.execute(
            select(Signal.issue_id, Signal.source)
            .where(Signal.issue_id.in_([i.id for i in issues]))
            .order_by(Signal.id)
        )
        for issue_id, source in rows:
            if issue_id is not None:
                sources.setdefault(issue_id, source)
    report_issues = [
        ReportIssue(
            id=i.id,
            title=i.title,
            priority=i.priority,
            status=i.status,
            component=i.component,
            source=sources.get(i.id, "manual"),
            sla_state=i.sla_state,
            impact_started_at=i.impact_started_at,
            detected_at=i.detected_at,
            acknowledged_at=i.acknowledged_at,
            resolved_at=i.resolved_at,
        )
        for i in issues
    ]
    # feedback volume and scores per day
    day_rows = await session.execute(
        select(Signal.occurred_at).where(
            Signal.kind == "user",
            Signal.occurred_at >= begin,
            Signal.occurred_at < stop,
            not_test(),
        )
    )
    volume: Counter[str] = Counter(f"{at:%Y-%m-%d}" for (at,) in day_rows)
    scores = await survey_scores(session=session, start=begin, end=stop)
    by_day: dict[str, dict[str, list[int]]] = {}
    for source, at, score in scores:
        by_day.setdefault(f"{at:%Y-%m-%d}", {"nps": [], "csat": []})[source].append(score)
    days = sorted(set(volume) | set(by_day))
    feedback_days = [
        DayFeedback(
            day=d,
            volume=volume.get(d, 0),
            nps=nps(by_day.get(d, {}).get("nps", [])).score,
            csat=csat(by_day.get(d, {}).get("csat", [])).score,
        )
        for d in days
    ]
    # top failing APIs
    aggs = await query.collect(
        session, live, dim="route", start=begin.timestamp(), end=stop.timestamp(), histograms=()
    )
    failing = sorted(
        (
            FailingApi(route, agg.requests, agg.c5xx)
            for (route, _), agg in aggs.items()
            if agg.c5xx and (scope.everything or route in scope.routes)
        ),
        key=lambda f: (-f.errors, f.route),
    )[:TOP_FAILING]
    # one read of hourly SLO points serves the SLO windows, the budget charts and slo_met
    windows = {s.name: rules.slo_window(s, launch.start, end).total_seconds() for s in launch.slos}
    looks = [c.slo_met.for_.total_seconds() for c in launch.exit_criteria if c.slo_met]
    first = min(
        begin.timestamp(),
        stop.timestamp() - max(windows.values(), default=0.0),
        now.timestamp() - max(looks, default=0.0),
    )
    points = await slo_points(
        session=session,
        live=live,
        slos=launch.slos,
        route_components=comps,
        start=first,
        end=max(stop, now).timestamp(),
        step=3600,
    )
    statuses = {
        s.name: rules.slo_status(
            s, points.get(s.name, []), now=stop.timestamp(), window=windows[s.name]
        )
        for s in launch.slos
    }
    step = 3600
    chart_points: Mapping[str, Sequence[Point]] = points
    if stop - begin <= timedelta(hours=6):
        step = 60
        chart_points = await slo_points(
            session=session,
            live=live,
            slos=launch.slos,
            route_components=comps,
            start=begin.timestamp(),
            end=stop.timestamp(),
            step=60,
        )
    budgets = {
        s.name: rules.budget_series(
            [p for p in chart_points.get(s.name, []) if p.start < stop.timestamp()],
            target=s.target,
            start=begin.timestamp() // step * step,
            step=step,
        )
        for s in launch.slos
    }
    facts = await load_facts(
        session=session,
        live=live,
        config=config,
        launch=launch,
        end=end,
        now=now,
        hour_points=points,
    )
    card = rules.scorecard(launch, state_of(launch, record, now).value, facts)
    return ReportData(
        launch=launch.name,
        kind=kind,
        state=card.state,
        start=begin,
        end=stop,
        generated_at=now,
        priorities=[lv.level for lv in config.triage.matrix],
        issues=report_issues,
        feedback=feedback_days,
        failing=failing,
        slos=list(statuses.values()),
        budgets=budgets,
        scorecard=card,
    )

"""The correlating attach step: which open issue a new signal belongs to, and why.

It replaces the dedup-only step of the feedback intake (same signature, see
`hypercare.feedback.attach.attach`): a known dedup key still updates its issue; otherwise the
signal is scored against the open issues (`detection/correlate.py`) and joins the best one
above the threshold, or opens a new issue. Every link is stored with its score and reasons,
corrections made by people (split, unlink) are respected, and the issue's priority follows
the impact table unless a person set it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.config import HypercareConfig
from hypercare.detection import correlate
from hypercare.detection.config import DetectionConfig
from hypercare.detection.impact import Impact, suggest_priority
from hypercare.detection.models import SignalExclusion, SignalLink
from hypercare.feedback import attach as dedup
from hypercare.feedback.models import Signal, SignalGroup
from hypercare.telemetry import calls
from hypercare.telemetry.segments import F_REQUEST_ID, F_ROUTE, F_TRACE_ID, REQUEST, TRACE
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, TimelineEntry
from hypercare.triage.rules import DONE, Matrix

# how long before a report the calls it cites (request ids, trace id) are searched for
CITED_CALLS_BEFORE = 1800.0

AUTOMATION = ("hypercare", "feedback", "detection", dedup.ACTOR)
_DONE = tuple(s.value for s in DONE)
_MAX_OPEN = 2000  # open issues a signal is scored against (the most recently updated)
_CACHE = "hypercare.detection.open_issues"


class _IssueRow(NamedTuple):
    id: int
    status: str
    updated_at: datetime
    created_at: datetime
    route: str | None
    component: str | None


_ISSUE_COLUMNS = (
    Issue.id,
    Issue.status,
    Issue.updated_at,
    Issue.created_at,
    Issue.route,
    Issue.component,
)


@dataclass(eq=False)
class _OpenIssues:
    """The open issues of one transaction with their signals' features (see `_open_cache`)."""

    transaction: object
    since: datetime
    issues: dict[int, _IssueRow]  # the candidates: open, updated since `since`
    routes: dict[int, set[str]] = field(default_factory=dict)
    components: dict[int, set[str]] = field(default_factory=dict)
    keys: dict[int, set[str]] = field(default_factory=dict)
    last: dict[int, datetime] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    # built from the above, without exclusions; dropped for the issues read again
    features: dict[int, correlate.IssueFeatures] = field(default_factory=dict)
    order: list[correlate.IssueFeatures] | None = None  # candidates, most recently updated first


class Correlator:
    """The attach step with correlation; built once from the configuration."""

    def __init__(self, config: HypercareConfig) -> None:
        self.detection: DetectionConfig = config.detection
        self.routes = [
            correlate.RouteInfo(
                name=r.name,
                path=r.match.path,
                component=r.tags.get("component"),
                description=r.tags.get("description", ""),
            )
            for r in config.gateway.routes
        ]
        self.by_name = {r.name: r for r in self.routes}
        self.components = {r.name: r.component for r in self.routes if r.component}
        self.criticality = {r.name: r.tags.get("criticality") for r in config.gateway.routes}

    async def __call__(
        self,
        *,
        session: AsyncSession,
        matrix: Matrix,
        signal: Signal,
        priorities: Mapping[str, Mapping[str, str]],
        create: bool = True,
        known: dedup.OpenGroups | None = None,
    ) -> Issue | None:
        issue = await self._attach(
            session=session,
            matrix=matrix,
            signal=signal,
            priorities=priorities,
            create=create,
            known=known,
        )
        cache = session.info.get(_CACHE)
        if issue is not None and isinstance(cache, _OpenIssues):
            cache.dirty.add(issue.id)  # its features changed: read them again before scoring
        return issue

    async def _attach(
        self,
        *,
        session: AsyncSession,
        matrix: Matrix,
        signal: Signal,
        priorities: Mapping[str, Mapping[str, str]],
        create: bool = True,
        known: dedup.OpenGroups | None = None,
    ) -> Issue | None:
        if known is None:
            known = await dedup.open_groups(session=session, keys=[signal.dedup_key])
        route = self.route_of(signal.route)
        if route and signal.route != route:
            # a URL path that a gateway route matches: the route it is, the path as a label
            # (a path no route matches stays as the signal's route: it is all we know)
            signal.labels = {**(signal.labels or {}), "url_path": signal.route or ""}
            signal.route = route
        features = await self._features(session, signal)
        if signal.route is None:
            # no route stated: one cited through a failed call, or named in the text
            found, why = correlate.resolve_route(features, self.routes)
            if found:
                signal.route = found
                signal.labels = {**(signal.labels or {}), "route_from": why or ""}
        if signal.component is None and signal.route:
            signal.component = self.components.get(signal.route)
        explicit = signal.issue_id is not None
        issue = await dedup.attach(
            session=session,
            matrix=matrix,
            signal=signal,
            priorities=priorities,
            create=False,
            known=known,
        )
        if issue is not None:
            reason = "added to this issue by its sender" if explicit else "same dedup key"
            await self._link(session, signal, issue, 1.0, [reason], by="hypercare")
            if _may_change_impact(signal):
                await self._reprioritise(session, matrix, issue, signal)
            return issue
        if signal.status == "resolved" or not create:
            return None
        candidates = await self._open_issues(session, signal)
        link, _ = correlate.best_link(
            features,
            candidates,
            self.routes,
            self.components,
            threshold=self.detection.correlation_threshold,
        )
        if link is not None:
            issue = await triage.get_issue(session=session, issue_id=link.issue_id)
            dedup.start_group(session, signal, issue, known)
            triage.record(
                session,
                issue,
                actor="hypercare",
                kind="signal_linked",
                text=f"{signal.source} signal linked: {signal.summary}"[:1500]
                + f" — {', '.join(link.reasons)}",
                data={
                    "signal_id": signal.id,
                    "score": link.score,
                    "reasons": list(link.reasons),
                },
                at=signal.received_at,
            )
            await self._link(session, signal, issue, link.score, list(link.reasons), "hypercare")
            await self._reprioritise(session, matrix, issue, signal)
            return issue
        issue = await dedup.attach(
            session=session,
            matrix=matrix,
            signal=signal,
            priorities=priorities,
            create=True,
            known=known,
        )
        if issue is None:
            return None
        if issue.route is None and signal.route:
            issue.route = signal.route
        if issue.component is None and signal.component:
            issue.component = signal.component
        await self._link(session, signal, issue, 1.0, ["opened this issue"], by="hypercare")
        await self._reprioritise(session, matrix, issue, signal)
        return issue

    def route_of(self, value: str | None) -> str | None:
        """A route name for what a source calls its route: a name, or a URL path."""
        if not value:
            return None
        if value in self.by_name:
            return value
        if value.startswith("/"):
            found = correlate.route_for_path(value, self.routes)
            return found.name if found else None
        return None

    async def _features(self, session: AsyncSession, signal: Signal) -> correlate.SignalFeatures:
        cited: dict[str, str] = {}
        # the calls a report cites happened shortly before it was sent
        start = signal.occurred_at.timestamp() - CITED_CALLS_BEFORE
        end = signal.received_at.timestamp() + 60
        ids = list(dict.fromkeys(i for i in (signal.request_ids or []) if i))[:20]
        if ids:
            rows = await calls.find_by_ids(session, REQUEST, ids, start, end)
            cited.update({r[F_REQUEST_ID]: r[F_ROUTE] for r in rows if r[F_ROUTE]})
        if signal.trace_id and not cited:
            rows = await calls.find_by_ids(session, TRACE, [signal.trace_id], start, end)
            first = next((r for r in rows if r[F_ROUTE]), None)
            if first is not None:
                cited[first[F_TRACE_ID]] = first[F_ROUTE]
        component = signal.component
        if component is None:
            for key in ("component", "service", "job"):
                value = (signal.labels or {}).get(key)
                if value and value in self.components.values():
                    component = value
                    break
        return correlate.SignalFeatures(
            signal_id=signal.id,
            kind=signal.kind,
            source=signal.source,
            occurred_at=signal.occurred_at.timestamp(),
            dedup_key=signal.dedup_key,
            route=signal.route if signal.route in self.by_name else None,
            component=component,
            text=f"{signal.summary} {signal.body[:2000]}",
            cited_routes=cited,
        )

    async def _open_issues(
        self, session: AsyncSession, signal: Signal
    ) -> list[correlate.IssueFeatures]:
        since = signal.received_at - self.detection.correlation_window
        cache = await self._open_cache(session, since)
        if not cache.issues:
            return []
        excluded = set(
            await session.scalars(
                select(SignalExclusion.issue_id).where(SignalExclusion.signal_id == signal.id)
            )
        )
        if cache.order is None:
            ranked = sorted(
                cache.issues.values(), key=lambda i: (i.updated_at, i.id), reverse=True
            )[:_MAX_OPEN]
            cache.order = [self._issue_features(cache, issue) for issue in ranked]
        if not excluded:
            return list(cache.order)
        mine = frozenset({signal.id})
        return [
            replace(f, excluded_signals=mine) if f.issue_id in excluded else f for f in cache.order
        ]

    def _issue_features(self, cache: _OpenIssues, issue: _IssueRow) -> correlate.IssueFeatures:
        found = cache.features.get(issue.id)
        if found is not None:
            return found
        routes = set(cache.routes[issue.id])
        components = set(cache.components[issue.id])
        if issue.route in self.by_name:
            routes.add(issue.route)
        if issue.component:
            components.add(issue.component)
        seen_at = cache.last.get(issue.id, issue.created_at)
        made = cache.features[issue.id] = correlate.IssueFeatures(
            issue_id=issue.id,
            dedup_keys=frozenset(cache.keys[issue.id]),
            routes=frozenset(routes),
            components=frozenset(components),
            first_seen=issue.created_at.timestamp(),
            last_seen=max(seen_at, issue.updated_at).timestamp(),
            excluded_signals=frozenset(),
        )
        return made

    async def _open_cache(self, session: AsyncSession, since: datetime) -> _OpenIssues:
        """The open issues and what their signals say, loaded once per transaction (and per
        correlation window start): a delivery of many signals scores each against the same
        open issues, so only the issues a signal of this transaction joined (or opened) are
        read again, just before the next signal is scored."""
        transaction = session.get_transaction()
        cache = session.info.get(_CACHE)
        if (
            isinstance(cache, _OpenIssues)
            and cache.transaction is transaction
            and cache.since == since
        ):
            if cache.dirty:
                await self._refresh(session, cache, sorted(cache.dirty))
                cache.dirty.clear()
            return cache
        rows = await session.execute(
            select(*_ISSUE_COLUMNS)
            .where(Issue.status.not_in(_DONE), Issue.updated_at >= since)
            .order_by(Issue.updated_at.desc(), Issue.id.desc())
            .limit(_MAX_OPEN)
        )
        issues = [_IssueRow(*row) for row in rows]
        cache = _OpenIssues(transaction, since, {i.id: i for i in issues})
        await self._load_features(session, cache, list(cache.issues))
        # at the limit, the issues past it could become candidates later in the transaction:
        # load everything again for every signal then (the cache would not know them)
        session.info[_CACHE] = cache if len(issues) < _MAX_OPEN else None
        return cache

    async def _refresh(self, session: AsyncSession, cache: _OpenIssues, ids: list[int]) -> None:
        """Read the issues `ids` again (with this transaction's changes): still candidates?"""
        for issue_id in ids:
            cache.issues.pop(issue_id, None)
        for row in await session.execute(select(*_ISSUE_COLUMNS).where(Issue.id.in_(ids))):
            issue = _IssueRow(*row)
            if issue.status not in _DONE and issue.updated_at >= cache.since:
                cache.issues[issue.id] = issue
        await self._load_features(session, cache, ids)

    async def _load_features(
        self, session: AsyncSession, cache: _OpenIssues, ids: list[int]
    ) -> None:
        """(Re)load the routes, components, last signal time and open dedup keys of `ids`."""
        if not ids:
            return
        cache.order = None
        for i in ids:
            cache.features.pop(i, None)
            cache.routes[i] = set()
            cache.components[i] = set()
            cache.keys[i] = set()
            cache.last.pop(i, None)
        rows = await session.execute(
            select(Signal.issue_id, Signal.route, Signal.component, func.max(Signal.received_at))
            .where(Signal.issue_id.in_(ids))
            .group_by(Signal.issue_id, Signal.route, Signal.component)
        )
        last = cache.last
        for issue_id, route, component, seen in rows:
            if issue_id is None:
                continue
            if route in self.by_name:
                cache.routes[issue_id].add(route)
            if component:
                cache.components[issue_id].add(component)
            if seen is not None and (issue_id not in last or seen > last[issue_id]):
                last[issue_id] = seen
        for issue_id, key in await session.execute(
            select(SignalGroup.issue_id, SignalGroup.dedup_key).where(
                SignalGroup.issue_id.in_(ids), SignalGroup.open.is_(True)
            )
        ):
            cache.keys[issue_id].add(key)

    async def _link(
        self,
        session: AsyncSession,
        signal: Signal,
        issue: Issue,
        score: float,
        reasons: list[str],
        by: str,
    ) -> None:
        # the signal was stored a moment ago: it has no link yet (people relink later)
        session.add(
            SignalLink(
                signal_id=signal.id,
                issue_id=issue.id,
                score=score,
                reasons=reasons,
                by=by,
                at=signal.received_at,
            )
        )

    async def _reprioritise(
        self, session: AsyncSession, matrix: Matrix, issue: Issue, signal: Signal
    ) -> None:
        """Raise the priority when the measured impact justifies it; never lower it, and
        never touch a priority a person set."""
        if issue.status in _DONE or await person_set(session, issue.id, "priority"):
            return
        impact = await self._impact(session, issue, signal)
        level, reasons = suggest_priority(impact, self.detection.impact)
        if level not in matrix.by_name or level >= issue.priority or not reasons:
            return
        await triage.update_issue(
            session=session,
            matrix=matrix,
            issue_id=issue.id,
            changes={"priority": level},
            actor="hypercare",
            now=signal.received_at,
        )
        triage.record(
            session,
            issue,
            actor="hypercare",
            kind="auto_priority",
            text=f"Auto-priority {level}: {', '.join(reasons)}",
            data={"priority": level, "reasons": reasons},
            at=signal.received_at,
        )

    async def _impact(self, session: AsyncSession, issue: Issue, signal: Signal) -> Impact:
        users = await session.scalar(
            select(func.count(func.distinct(Signal.user_ref))).where(
                Signal.issue_id == issue.id, Signal.kind == "user", Signal.user_ref.is_not(None)
            )
        )
        reporters = await session.scalar(
            select(func.count()).where(Signal.issue_id == issue.id, Signal.kind == "user")
        )
        share: float | None = None
        total = False
        raw = signal.raw if isinstance(signal.raw, dict) else {}
        if signal.source == "gateway":
            value = raw.get("value")
            if raw.get("metric") in ("error_rate", "5xx") and isinstance(value, int | float):
                share = float(value)
                total = share >= 0.99
            total = total or raw.get("rule") == "no-healthy-target"
        route = signal.route or issue.route
        return Impact(
            failing_share=share,
            total_failure=total,
            criticality=self.criticality.get(route or ""),
            distinct_users=max(users or 0, reporters or 0),
            source_severity=(signal.severity or "").lower() or None,
        )


def _may_change_impact(signal: Signal) -> bool:
    """A repeat of a known alert changes nothing the impact table looks at (its severity was
    weighed when it first arrived); a new report by a person (more users) or fresh gateway
    evidence (the failing share) may."""
    return signal.kind == "user" or signal.source == "gateway"


async def person_set(session: AsyncSession, issue_id: int, what: str) -> bool:
    """Did a person (not automation) set `what` ("priority" or a field name) on the issue?"""
    rows = await session.execute(
        select(TimelineEntry.data).where(
            TimelineEntry.issue_id == issue_id,
            TimelineEntry.actor.not_in(AUTOMATION),
            TimelineEntry.kind == ("priority" if what == "priority" else "field"),
        )
    )
    return any(what == "priority" or (data or {}).get("field") == what for (data,) in rows)

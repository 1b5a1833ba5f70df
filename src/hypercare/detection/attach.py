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
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.config import HypercareConfig
from hypercare.detection import correlate
from hypercare.detection.config import DetectionConfig
from hypercare.detection.impact import Impact, suggest_priority
from hypercare.detection.models import SignalExclusion, SignalLink
from hypercare.feedback import attach as dedup
from hypercare.feedback.models import Signal, SignalGroup
from hypercare.telemetry.models import TelemetryCall as CallRow
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, TimelineEntry
from hypercare.triage.rules import DONE, Matrix

AUTOMATION = ("hypercare", "feedback", "detection")
_DONE = tuple(s.value for s in DONE)


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
        if known is None:
            known = await dedup.open_groups(session=session, keys=[signal.dedup_key])
        route = self.route_of(signal.route)
        if route and signal.route != route:
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
        ids = [i for i in (signal.request_ids or []) if i][:20]
        if ids:
            rows = await session.execute(
                select(CallRow.request_id, CallRow.route).where(
                    CallRow.request_id.in_(ids), CallRow.route != ""
                )
            )
            cited.update({str(rid): str(route) for rid, route in rows})
        if signal.trace_id and not cited:
            row = await session.execute(
                select(CallRow.trace_id, CallRow.route)
                .where(CallRow.trace_id == signal.trace_id, CallRow.route != "")
                .limit(1)
            )
            cited.update({str(tid): str(route) for tid, route in row})
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
        issues = list(
            await session.scalars(
                select(Issue)
                .where(Issue.status.not_in(_DONE), Issue.updated_at >= since)
                .order_by(Issue.updated_at.desc())
                .limit(2000)
            )
        )
        if not issues:
            return []
        ids = [i.id for i in issues]
        routes: dict[int, set[str]] = {i: set() for i in ids}
        components: dict[int, set[str]] = {i: set() for i in ids}
        last: dict[int, datetime] = {}
        rows = await session.execute(
            select(Signal.issue_id, Signal.route, Signal.component, func.max(Signal.received_at))
            .where(Signal.issue_id.in_(ids))
            .group_by(Signal.issue_id, Signal.route, Signal.component)
        )
        for issue_id, route, component, seen in rows:
            if issue_id is None:
                continue
            if route in self.by_name:
                routes[issue_id].add(route)
            if component:
                components[issue_id].add(component)
            if seen is not None and (issue_id not in last or seen > last[issue_id]):
                last[issue_id] = seen
        keys: dict[int, set[str]] = {i: set() for i in ids}
        for issue_id, key in await session.execute(
            select(SignalGroup.issue_id, SignalGroup.dedup_key).where(
                SignalGroup.issue_id.in_(ids), SignalGroup.open.is_(True)
            )
        ):
            keys[issue_id].add(key)
        excluded = set(
            await session.scalars(
                select(SignalExclusion.issue_id).where(SignalExclusion.signal_id == signal.id)
            )
        )
        out = []
        for issue in issues:
            if issue.route in self.by_name:
                routes[issue.id].add(issue.route)
            if issue.component:
                components[issue.id].add(issue.component)
            seen_at = last.get(issue.id, issue.created_at)
            out.append(
                correlate.IssueFeatures(
                    issue_id=issue.id,
                    dedup_keys=frozenset(keys[issue.id]),
                    routes=frozenset(routes[issue.id]),
                    components=frozenset(components[issue.id]),
                    first_seen=issue.created_at.timestamp(),
                    last_seen=max(seen_at, issue.updated_at).timestamp(),
                    excluded_signals=frozenset({signal.id})
                    if issue.id in excluded
                    else frozenset(),
                )
            )
        return out

    async def _link(
        self,
        session: AsyncSession,
        signal: Signal,
        issue: Issue,
        score: float,
        reasons: list[str],
        by: str,
    ) -> None:
        existing = await session.get(SignalLink, signal.id)
        if existing is not None:
            existing.issue_id, existing.score, existing.reasons, existing.by = (
                issue.id,
                score,
                reasons,
                by,
            )
            return
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

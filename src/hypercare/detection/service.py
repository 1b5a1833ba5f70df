"""Detection's store work: findings into signals, deployments, human corrections, watches.

Functions take a keyword-only session and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.detection import correlate
from hypercare.detection.config import RuleConfig
from hypercare.detection.engine import Finding
from hypercare.detection.models import (
    AlertRule,
    Deployment,
    DeploymentCreate,
    FlapRead,
    LinkRead,
    SignalExclusion,
    SignalLink,
    ValidationWatch,
    WatchRead,
)
from hypercare.detection.rules import SECURITY, Evidence, WindowStats
from hypercare.errors import Conflict, InvalidInput, NotFound
from hypercare.feedback import service as feedback
from hypercare.feedback.attach import AttachStep, start_group
from hypercare.feedback.drafts import SignalDraft
from hypercare.feedback.models import Signal, SignalGroup
from hypercare.feedback.samples import TEST_LABEL
from hypercare.store.base import utcnow
from hypercare.telemetry.aggregate import STORED_QUANTILES, Aggregate
from hypercare.telemetry.models import TelemetryMinute
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, IssueCreate, IssueRead, TimelineEntry
from hypercare.triage.rules import DONE, Matrix, Status

_DONE = tuple(s.value for s in DONE)


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def evidence_dict(ev: Evidence) -> dict[str, Any]:
    return {
        "rule": ev.rule,
        "route": ev.route,
        "metric": ev.metric,
        "value": ev.value,
        "reference": ev.reference,
        "reason": ev.reason,
        "window_start": _at(ev.window_start).isoformat(),
        "window_end": _at(ev.window_end).isoformat(),
        "requests": ev.requests,
        "top_paths": [list(p) for p in ev.top_paths],
        "top_errors": [list(e) for e in ev.top_errors],
        "sample_request_ids": list(ev.sample_request_ids),
    }


def finding_draft(finding: Finding, component: str | None) -> SignalDraft:
    """A gateway signal carrying the finding's evidence."""
    ev = finding.evidence
    raw = evidence_dict(ev)
    if finding.kind == "forecast" and finding.forecast is not None:
        breach = _at(finding.forecast.breach_at)
        raw["forecast"] = {
            "breach_at": breach.isoformat(),
            "slope_per_minute": finding.forecast.slope_per_minute,
            "r_squared": finding.forecast.r_squared,
        }
        summary = (
            f"Early warning: {ev.route} {ev.metric} rising, projected to breach "
            f"{finding.rule.name} at {breach:%H:%M:%S} UTC"
        )
        return SignalDraft(
            kind="system",
            source="gateway",
            summary=summary,
            dedup_key=f"gateway:forecast:{finding.rule.name}:{finding.route}",
            raw=raw,
            body=ev.summary(),
            severity="warning",
            status="firing",
            occurred_at=_at(finding.at),
            component=component,
            route=finding.route,
            request_ids=ev.sample_request_ids,
            labels={"rule": finding.rule.name, "kind": "forecast"},
        )
    resolved = finding.kind == "resolve"
    verb = "recovered" if resolved else finding.rule.description or finding.rule.name
    security = finding.rule.category == SECURITY
    labels = {"rule": finding.rule.name}
    summary = f"{finding.route}: {verb}"
    if security:
        # its own title, label and dedup key: an auth-failure spike is a security issue and
        # never merges into an application-error one
        labels["category"] = SECURITY
        if not resolved:
            summary = f"Security: possible credential attack on {finding.route}: {verb}"
    lines = [ev.summary()]
    if ev.top_paths:
        lines.append("top failing paths: " + ", ".join(f"{p} ({n})" for p, n in ev.top_paths))
    if ev.top_errors:
        lines.append("error kinds: " + ", ".join(f"{e} ({n})" for e, n in ev.top_errors))
    if ev.sample_request_ids:
        lines.append("sample request ids: " + ", ".join(ev.sample_request_ids))
    return SignalDraft(
        kind="system",
        source="gateway",
        summary=summary[:500],
        dedup_key=finding.dedup_key,
        raw=raw,
        body="\n".join(lines),
        severity=finding.severity,
        status="resolved" if resolved else "firing",
        occurred_at=_at(finding.impact_started_at if not resolved else finding.at),
        component=component,
        route=finding.route,
        request_ids=ev.sample_request_ids,
        labels=labels,
    )


async def emit(
    *,
    session: AsyncSession,
    matrix: Matrix,
    priorities: Mapping[str, Mapping[str, str]],
    attach: AttachStep | None,
    finding: Finding,
    component: str | None,
) -> feedback.Ingested:
    """Store a finding as a signal through the normal intake (dedup, correlation)."""
    done = await feedback.ingest(
        session=session,
        matrix=matrix,
        priorities=priorities,
        drafts=[finding_draft(finding, component)],
        attach=attach,
    )
    if finding.kind == "fire":
        from hypercare.detection.attach import person_set

        for issue_id in done.issue_ids:
            issue = await triage.get_issue(session=session, issue_id=issue_id)
            if issue.route is not None and issue.route != finding.route:
                continue  # another route's telemetry says nothing of when this one broke
            if await person_set(session, issue.id, "impact_started_at"):
                continue
            onset = await first_bad_second(session=session, issue_id=issue.id, route=finding.route)
            mine = _at(finding.impact_started_at)
            onset = mine if onset is None else min(onset, mine)
            if issue.route is None and issue.impact_started_at is not None:
                onset = min(onset, issue.impact_started_at)
            # the issue's route: its telemetry decides, even over an earlier unrelated signal
            issue.impact_started_at = onset
    return done


async def first_bad_second(*, session: AsyncSession, issue_id: int, route: str) -> datetime | None:
    """The earliest first-bad-second of the firing gateway signals of `route` on the issue
    (a firing gateway signal's `occurred_at` is its rule's first breaching second)."""
    found: datetime | None = await session.scalar(
        select(func.min(Signal.occurred_at)).where(
            Signal.issue_id == issue_id,
            Signal.source == "gateway",
            Signal.dedup_key.like("gateway:%"),  # not security or forecast signals
            ~Signal.dedup_key.like("gateway:forecast:%"),
            Signal.route == route,
            Signal.status == "firing",
        )
    )
    return found


# --- history for baselines ----------------------------------------------------------------


async def route_minutes(
    *, session: AsyncSession, start: int, end: int
) -> dict[str, dict[int, WindowStats]]:
    """Every route's stored minute rollups in [start, end), as per-minute numbers for the
    detector's baselines (several rows of one minute, from late batches, are summed)."""
    rows = await session.execute(
        select(
            TelemetryMinute.key,
            TelemetryMinute.bucket,
            TelemetryMinute.requests,
            TelemetryMinute.c4xx,
            TelemetryMinute.c5xx,
            TelemetryMinute.auth_failures,
            TelemetryMinute.rate_limited,
            TelemetryMinute.upstream_errors,
            TelemetryMinute.bytes_in,
            TelemetryMinute.bytes_out,
            TelemetryMinute.codes,
            TelemetryMinute.errors,
            TelemetryMinute.hist_total,
        ).where(
            TelemetryMinute.dim == "route",
            TelemetryMinute.bucket >= start,
            TelemetryMinute.bucket < end,
        )
    )
    merged: dict[tuple[str, int], Aggregate] = {}
    for row in rows:
        agg = merged.get((row.key, row.bucket))
        if agg is None:
            agg = merged[(row.key, row.bucket)] = Aggregate()
        agg.merge_row(row, codes=False)
    out: dict[str, dict[int, WindowStats]] = {}
    for (route, bucket), agg in merged.items():
        p50, p95, p99 = agg.hist_total.quantiles(STORED_QUANTILES)
        out.setdefault(route, {})[bucket] = WindowStats(
            route=route,
            start=bucket,
            end=bucket + 60,
            requests=agg.requests,
            status_5xx=agg.c5xx,
            status_4xx=agg.c4xx,
            auth_failures=agg.auth_failures,
            rate_limited=agg.rate_limited,
            upstream_errors=agg.upstream_errors,
            p50=p50,
            p95=p95,
            p99=p99,
        )
    return out


# --- deployments ---------------------------------------------------------------------------


async def record_deployment(
    *, session: AsyncSession, data: DeploymentCreate, actor: str
) -> Deployment:
    issues = []
    for issue_id in data.issue_ids:
        issues.append(await triage.get_issue(session=session, issue_id=issue_id))
    row = Deployment(
        service=data.service,
        version=data.version,
        description=data.description,
        kind=data.kind,
        issue_ids=list(data.issue_ids),
        deployed_at=data.deployed_at or utcnow(),
        actor=actor,
    )
    session.add(row)
    await session.flush()
    for issue in issues:
        triage.record(
            session,
            issue,
            actor=actor,
            kind="deployment",
            text=f"{data.kind.capitalize()} {data.service} {data.version} deployed"
            + (f": {data.description}" if data.description else ""),
            data={"deployment_id": row.id, "service": data.service, "version": data.version},
            at=row.deployed_at,
        )
    return row


async def list_deployments(*, session: AsyncSession, limit: int) -> list[Deployment]:
    return list(
        await session.scalars(
            select(Deployment).order_by(Deployment.deployed_at.desc()).limit(limit)
        )
    )


# --- corrections by people -----------------------------------------------------------------


async def merge(
    *, session: AsyncSession, matrix: Matrix, source_id: int, into_id: int, actor: str
) -> Issue:
    """Move every signal of `source_id` to `into_id` and close the source as a duplicate."""
    if source_id == into_id:
        raise InvalidInput("an issue cannot be merged into itself")
    source = await triage.get_issue(session=session, issue_id=source_id)
    target = await triage.get_issue(session=session, issue_id=into_id)
    if target.status == Status.closed.value:
        raise Conflict(f"issue {into_id} is closed; merge into an open issue")
    moved = 0
    for signal in await session.scalars(select(Signal).where(Signal.issue_id == source_id)):
        signal.issue_id = into_id
        moved += 1
        link = await session.get(SignalLink, signal.id)
        if link is not None:
            link.issue_id, link.score, link.by = into_id, 1.0, actor
            link.reasons = [f"merged from issue {source_id} by {actor}"]
    for group in await session.scalars(
        select(SignalGroup).where(SignalGroup.issue_id == source_id)
    ):
        group.issue_id = into_id
    if target.impact_started_at is None or (
        source.impact_started_at is not None and source.impact_started_at < target.impact_started_at
    ):
        target.impact_started_at = source.impact_started_at or target.impact_started_at
    if source.detected_at and (
        target.detected_at is None or source.detected_at < target.detected_at
    ):
        target.detected_at = source.detected_at
    triage.record(
        session,
        target,
        actor=actor,
        kind="merge",
        text=f"Issue {source_id} merged into this one ({moved} signal(s))",
        data={"from": source_id, "signals": moved},
    )
    if source.status != Status.closed.value:
        await triage.transition(
            session=session,
            matrix=matrix,
            issue_id=source_id,
            to=Status.closed,
            reason=f"duplicate of #{into_id} (merged)",
            actor=actor,
        )
    return target


async def split(
    *, session: AsyncSession, matrix: Matrix, signal_id: int, title: str | None, actor: str
) -> Issue:
    """Take a signal off its issue into a new issue of its own; it never goes back."""
    signal = await _signal(session, signal_id)
    if (signal.labels or {}).get(TEST_LABEL) == "true":
        raise Conflict(
            f"signal {signal_id} is a test event (an integration's test delivery): "
            "test signals open no issue; send a real event to open one"
        )
    old = await _exclude(session, signal, actor)
    issue = await triage.create_issue(
        session=session,
        matrix=matrix,
        data=IssueCreate(
            title=(title or signal.summary or "Split signal")[:300],
            description=signal.body[:20_000],
            priority=old.priority if old else None,
            component=signal.component,
            route=signal.route,
            impact_started_at=signal.occurred_at,
        ),
        actor=actor,
        detected_at=signal.received_at,
    )
    start_group(session, signal, issue)
    link = await session.get(SignalLink, signal.id)
    reasons = [f"split off issue {old.id if old else '?'} by {actor}"]
    if link is None:
        session.add(
            SignalLink(signal_id=signal.id, issue_id=issue.id, score=1.0, reasons=reasons, by=actor)
        )
    else:
        link.issue_id, link.score, link.reasons, link.by = issue.id, 1.0, reasons, actor
    triage.record(
        session,
        issue,
        actor=actor,
        kind="split",
        text=f"Split from issue {old.id if old else '?'}: {signal.summary}"[:2000],
        data={"signal_id": signal.id, "from": old.id if old else None},
    )
    return issue


async def unlink(*, session: AsyncSession, signal_id: int, actor: str) -> Signal:
    """Take a signal off its issue; automation will not put it back there."""
    signal = await _signal(session, signal_id)
    if signal.issue_id is None:
        raise Conflict(f"signal {signal_id} is not linked to an issue")
    await _exclude(session, signal, actor)
    signal.issue_id = None
    link = await session.get(SignalLink, signal.id)
    if link is not None:
        await session.delete(link)
    return signal


async def _signal(session: AsyncSession, signal_id: int) -> Signal:
    signal = await session.get(Signal, signal_id)
    if signal is None:
        raise NotFound(f"no signal with id {signal_id}")
    return signal


async def _exclude(session: AsyncSession, signal: Signal, actor: str) -> Issue | None:
    if signal.issue_id is None:
        return None
    old = await triage.get_issue(session=session, issue_id=signal.issue_id)
    if await session.get(SignalExclusion, (signal.id, old.id)) is None:
        session.add(SignalExclusion(signal_id=signal.id, issue_id=old.id, by=actor))
    # a later signal with the same key must not re-join through the dedup group either
    for group in await session.scalars(
        select(SignalGroup).where(
            SignalGroup.issue_id == old.id, SignalGroup.dedup_key == signal.dedup_key
        )
    ):
        group.open = False
    triage.record(
        session,
        old,
        actor=actor,
        kind="unlink",
        text=f"Signal {signal.id} taken off this issue: {signal.summary}"[:2000],
        data={"signal_id": signal.id},
    )
    return old


# --- validation watches --------------------------------------------------------------------


async def issue_routes(*, session: AsyncSession, issue: Issue) -> list[str]:
    routes: set[str] = {issue.route} if issue.route else set()
    for route in await session.scalars(
        select(Signal.route)
        .where(Signal.issue_id == issue.id, Signal.route.is_not(None))
        .distinct()
    ):
        if route:
            routes.add(route)
    return sorted(routes)


async def start_watches(
    *, session: AsyncSession, window: timedelta, now: datetime, known_routes: set[str]
) -> list[ValidationWatch]:
    """Open a watch for every resolved issue, and every open issue a deployment names,
    that has none running yet."""
    started = []
    watched = set(
        await session.scalars(
            select(ValidationWatch.issue_id).where(ValidationWatch.state == "watching")
        )
    )
    candidates: dict[int, str] = {}
    for issue in await session.scalars(
        select(Issue).where(Issue.status == Status.resolved.value, Issue.verified_at.is_(None))
    ):
        done_before = await session.scalar(
            select(ValidationWatch.id).where(
                ValidationWatch.issue_id == issue.id,
                ValidationWatch.started_at >= (issue.resolved_at or now),
            )
        )
        if done_before is None:
            candidates[issue.id] = "resolved"
    for dep in await session.scalars(
        select(Deployment).where(Deployment.deployed_at >= now - window - timedelta(minutes=5))
    ):
        for issue_id in dep.issue_ids:
            seen = await session.scalar(
                select(ValidationWatch.id).where(
                    ValidationWatch.issue_id == issue_id,
                    ValidationWatch.started_at >= dep.deployed_at,
                )
            )
            if seen is None:
                candidates.setdefault(issue_id, f"{dep.kind} {dep.service} {dep.version}")
    for issue_id, reason in candidates.items():
        if issue_id in watched:
            continue
        found = await session.get(Issue, issue_id)
        if found is None or found.status in (Status.closed.value, Status.verified.value):
            continue
        issue = found
        routes = [r for r in await issue_routes(session=session, issue=issue) if r in known_routes]
        watch = ValidationWatch(
            issue_id=issue_id,
            routes=routes,
            reason=reason,
            started_at=now,
            ends_at=now + window,
            state="watching",
            outcome={},
        )
        session.add(watch)
        triage.record(
            session,
            issue,
            actor="hypercare",
            kind="validation",
            text=f"Validating the fix ({reason}): watching {', '.join(routes) or 'no route'} "
            f"until {watch.ends_at:%H:%M:%S} UTC",
            data={"routes": routes, "until": watch.ends_at.isoformat()},
            at=now,
        )
        started.append(watch)
    await session.flush()
    return started


async def user_reports_since(*, session: AsyncSession, routes: list[str], since: datetime) -> int:
    if not routes:
        return 0
    rows = await session.scalars(
        select(Signal.id).where(
            Signal.kind == "user",
            Signal.route.in_(routes),
            Signal.received_at > since,
            feedback.not_test(),
        )
    )
    return len(list(rows))


async def watching(*, session: AsyncSession) -> list[ValidationWatch]:
    return list(
        await session.scalars(select(ValidationWatch).where(ValidationWatch.state == "watching"))
    )


async def watches_of(*, session: AsyncSession, issue_id: int) -> list[ValidationWatch]:
    return list(
        await session.scalars(
            select(ValidationWatch)
            .where(ValidationWatch.issue_id == issue_id)
            .order_by(ValidationWatch.started_at)
        )
    )


async def links_of(*, session: AsyncSession, issue_id: int) -> dict[int, SignalLink]:
    rows = await session.scalars(select(SignalLink).where(SignalLink.issue_id == issue_id))
    return {row.signal_id: row for row in rows}


async def issue_section(session: AsyncSession, read: IssueRead) -> dict[str, object]:
    """The issue detail's detection section (`IssueAnalysis`'s own fields): why each signal
    is linked, the validation of the fix, the flapping keys."""
    links = await links_of(session=session, issue_id=read.id)
    watches = await watches_of(session=session, issue_id=read.id)
    found = await flaps_of(session=session, issue_id=read.id)
    return {
        "links": [LinkRead.model_validate(link) for link in links.values()],
        "validation": [WatchRead.model_validate(w) for w in watches],
        "flaps": found,
        "flapping": bool(found),
    }


FLAP_SIGNALS = 5000  # newest signals of an issue read for its fire/resolve cycles


async def flaps_of(*, session: AsyncSession, issue_id: int) -> list[FlapRead]:
    """The fire/resolve cycles of the issue's dedup keys (its newest `FLAP_SIGNALS` signals)."""
    rows = list(
        await session.execute(
            select(Signal.dedup_key, Signal.status, Signal.received_at)
            .where(Signal.issue_id == issue_id, Signal.status.in_(("firing", "resolved")))
            .order_by(Signal.id.desc())
            .limit(FLAP_SIGNALS)
        )
    )
    rows.reverse()
    return [
        FlapRead(
            dedup_key=f.dedup_key,
            cycles=f.cycles,
            changes=f.changes,
            last_change=_at(f.last_change),
            status=f.status,
        )
        for f in correlate.flaps((k, s or "", at.timestamp()) for k, s, at in rows)
    ]


# --- rules added through the API -----------------------------------------------------------


async def stored_rules(*, session: AsyncSession) -> list[RuleConfig]:
    rows = await session.scalars(select(AlertRule).order_by(AlertRule.name))
    return [RuleConfig.model_validate(r.definition) for r in rows]


async def add_rule(
    *, session: AsyncSession, rule: RuleConfig, configured: set[str], actor: str
) -> AlertRule:
    if rule.name in configured:
        raise Conflict(
            f"rule {rule.name!r} comes from the configuration file; change it there, "
            "or give this one another name"
        )
    if await session.get(AlertRule, rule.name) is not None:
        raise Conflict(f"rule {rule.name!r} exists; delete it first to replace it")
    row = AlertRule(
        name=rule.name,
        # durations as seconds: the loader reads numbers, not ISO 8601 strings
        definition={
            k: v.total_seconds() if isinstance(v, timedelta) else v
            for k, v in rule.model_dump(by_alias=True).items()
        },
        created_by=actor,
    )
    session.add(row)
    await session.flush()
    return row


async def delete_rule(*, session: AsyncSession, name: str) -> None:
    row = await session.get(AlertRule, name)
    if row is None:
        raise NotFound(
            f"no rule {name!r} added through the API (configured rules live in the file)"
        )
    await session.delete(row)


# --- auto-resolve --------------------------------------------------------------------------

_AUTO_BATCH = 200  # candidates looked at per pass


async def auto_resolve(
    *, session: AsyncSession, matrix: Matrix, after: timedelta, now: datetime
) -> list[int]:
    """Resolve the issues that only automation touched and whose every signal fired and
    resolved within `after`, quiet for `after` since: a blip should not keep an SLA running.
    Each gets the ``auto-resolved`` label and a timeline entry; a signal that fires again
    reopens it (see `detection/attach.py`)."""
    from hypercare.detection.attach import AUTO_RESOLVED, AUTOMATION

    quiet_since = now - after
    # open issues in `new` whose dedup groups all resolved, the last before `quiet_since`
    groups = (
        select(SignalGroup.issue_id)
        .group_by(SignalGroup.issue_id)
        .having(
            func.sum(case((SignalGroup.status == "resolved", 0), else_=1)) == 0,
            func.max(SignalGroup.last_seen) < quiet_since,
        )
    )
    candidates = list(
        await session.scalars(
            select(Issue)
            .where(Issue.status == Status.new.value, Issue.id.in_(groups))
            .order_by(Issue.id)
            .limit(_AUTO_BATCH)
        )
    )
    if not candidates:
        return []
    ids = [i.id for i in candidates]
    touched = set(
        await session.scalars(
            select(TimelineEntry.issue_id)
            .where(TimelineEntry.issue_id.in_(ids), TimelineEntry.actor.not_in(AUTOMATION))
            .distinct()
        )
    )
    reported = set(
        await session.scalars(
            select(Signal.issue_id)
            .where(Signal.issue_id.in_(ids), Signal.kind == "user")
            .distinct()
        )
    )
    spans: dict[int, float] = {}
    for issue_id, first, last in await session.execute(
        select(SignalGroup.issue_id, SignalGroup.first_seen, SignalGroup.last_seen).where(
            SignalGroup.issue_id.in_(ids)
        )
    ):
        spans[issue_id] = max(spans.get(issue_id, 0.0), (last - first).total_seconds())
    done: list[int] = []
    limit = after.total_seconds()
    for issue in candidates:
        if issue.id in touched or issue.id in reported or spans.get(issue.id, 0.0) > limit:
            continue
        reason = (
            f"{AUTO_RESOLVED}: every signal resolved within {_span(spans.get(issue.id, 0.0))} "
            f"and nothing fired for {_span(limit)}; nobody worked on it"
        )
        for step in (Status.triaged, Status.resolved):
            await triage.transition(
                session=session,
                matrix=matrix,
                issue_id=issue.id,
                to=step,
                reason=reason,
                actor="hypercare",
                now=now,
            )
        issue.labels = [*(issue.labels or []), AUTO_RESOLVED]
        done.append(issue.id)
    return done


async def reopen_auto_resolved(
    *, session: AsyncSession, matrix: Matrix, issue_id: int, why: str, now: datetime
) -> Issue:
    """A signal fired again on an issue hypercare resolved by itself: reopen it."""
    from hypercare.detection.attach import AUTO_RESOLVED

    issue = await triage.get_issue(session=session, issue_id=issue_id)
    issue.labels = [label for label in (issue.labels or []) if label != AUTO_RESOLVED]
    return await triage.transition(
        session=session,
        matrix=matrix,
        issue_id=issue_id,
        to=Status.reopened,
        reason=f"fired again after it was resolved automatically: {why}"[:4000],
        actor="hypercare",
        now=now,
    )


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"

"""Background work of detection: evaluate rules every few seconds, turn findings into
signals, poll gateway target health, and validate fixes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from hypercare.api.state import AppState
from hypercare.detection import service
from hypercare.detection.attach import Correlator
from hypercare.detection.engine import Detector, Finding
from hypercare.detection.live import LiveWindows
from hypercare.detection.rules import Condition, Metric, metric_value
from hypercare.detection.validation import compare, describe, judge
from hypercare.store.base import utcnow
from hypercare.triage import service as triage
from hypercare.triage.rules import Status

log = logging.getLogger("hypercare.detection")


@dataclass
class DetectionRuntime:
    """Detection's long-lived state, kept in `AppState.runtimes`."""

    live: LiveWindows
    detector: Detector
    # admin URLs of local gateway workers, polled for target health
    health_urls: list[str] = field(default_factory=list)
    findings: int = 0
    last_tick_ms: float = 0.0
    # routes whose findings are expected (a status page maintenance window): no signal, no
    # issue, nobody paged; set by the status page when it is configured to
    expected: Callable[[str], bool] | None = None
    expected_findings: int = 0
    history_loaded_at: float = 0.0


def runtime(state: AppState) -> DetectionRuntime:
    found = state.runtimes.get(DetectionRuntime)
    if found is not None:
        return found
    cfg = state.config.detection
    live = LiveWindows(keep_seconds=3600)
    made = DetectionRuntime(
        live=live,
        detector=Detector(
            cfg.all_rules(),
            live,
            window_seconds=cfg.window.total_seconds(),
            forecast_horizon=cfg.forecast_horizon.total_seconds(),
            overrides=cfg.overrides(),
        ),
    )
    state.runtimes.put(made)
    return made


async def emit_findings(state: AppState, findings: list[Finding]) -> None:
    components = {r.name: r.tags.get("component") for r in state.config.all_routes()}
    rt = runtime(state)
    for finding in findings:
        if rt.expected is not None and rt.expected(finding.route):
            rt.expected_findings += 1
            log.info(
                "%s %s on %s: expected (maintenance window), no signal",
                finding.kind,
                finding.rule.name,
                finding.route,
            )
            continue
        async with state.sessions() as session, session.begin():
            await service.emit(
                session=session,
                matrix=state.matrix,
                priorities=state.config.feedback.priorities,
                attach=state.attach,
                finding=finding,
                component=components.get(finding.route),
            )
        log.info("%s %s on %s", finding.kind, finding.rule.name, finding.route)


async def poll_health(state: AppState, rt: DetectionRuntime, client: httpx.AsyncClient) -> None:
    """Healthy targets per route, from the local gateway workers' admin listeners."""
    if not rt.health_urls:
        return
    healthy: dict[str, int] = {}
    for url in rt.health_urls:
        try:
            view = (await client.get(url)).json()
        except (httpx.HTTPError, ValueError):
            continue
        for upstream, targets in (view.get("upstreams") or {}).items():
            count = sum(1 for t in targets if t.get("in_rotation"))
            healthy[upstream] = min(healthy.get(upstream, count), count)
        break  # one worker's view is enough: each runs the same checks
    for route in state.config.gateway.routes:
        if route.upstream in healthy:
            rt.live.set_healthy_targets(route.name, healthy[route.upstream])


async def validate(state: AppState, rt: DetectionRuntime) -> None:
    """Start watches for fixed issues, and decide the ones under way."""
    now = utcnow()
    window = state.config.detection.validation_window
    known_routes = set(state.config.route_names())
    async with state.sessions() as session, session.begin():
        await service.start_watches(
            session=session, window=window, now=now, known_routes=known_routes
        )
        cfg = state.config.detection
        grace = (
            cfg.window.total_seconds()
            + max((r.clear_for_seconds for r in rt.detector.rules), default=0.0)
            + 10.0
        )
        # all traffic stopping says nothing about a fix: it neither verifies nor regresses one
        no_traffic = {r.name for r in rt.detector.rules if r.condition is Condition.drop_to_zero}
        for watch in await service.watching(session=session):
            started = watch.started_at.timestamp()
            firing_here = [
                f
                for route in watch.routes
                for f in rt.detector.firing_since(route)
                if f[0] not in no_traffic
            ]
            reports = await service.user_reports_since(
                session=session, routes=watch.routes, since=watch.started_at
            )
            after = [rt.live.stats(r, started, now.timestamp()) for r in watch.routes]
            verdict = judge(
                elapsed=(now - watch.started_at).total_seconds(),
                window=window.total_seconds(),
                grace=max(grace, window.total_seconds()),
                started=started,
                firing=firing_here,
                new_user_reports=reports,
                after=after,
            )
            if verdict.outcome == "watching":
                continue
            issue = await triage.get_issue(session=session, issue_id=watch.issue_id)
            lines = list(verdict.reasons)
            if issue.impact_started_at is not None:
                end = (issue.mitigated_at or issue.resolved_at or watch.started_at).timestamp()
                for r, a in zip(watch.routes, after, strict=True):
                    before = rt.live.stats(r, issue.impact_started_at.timestamp(), end)
                    if before.requests:
                        lines.append("before → after: " + compare(before, a))
            watch.state = verdict.outcome
            watch.outcome = {"reasons": lines, "decided_at": now.isoformat()}
            text = "; ".join(lines)
            if verdict.outcome == "verified":
                for step in _path_to_verified(Status(issue.status)):
                    await triage.transition(
                        session=session,
                        matrix=state.matrix,
                        issue_id=issue.id,
                        to=step,
                        reason=f"validated by hypercare: {text}"[:4000]
                        if step is Status.verified
                        else "fix deployed and validated by hypercare",
                        actor="hypercare",
                        now=now,
                    )
            elif Status(issue.status) in (Status.resolved, Status.verified):
                await triage.transition(
                    session=session,
                    matrix=state.matrix,
                    issue_id=issue.id,
                    to=Status.reopened,
                    reason=f"regression after the fix: {text}"[:4000],
                    actor="hypercare",
                    now=now,
                )
            else:
                triage.record(
                    session,
                    issue,
                    actor="hypercare",
                    kind="validation",
                    text=f"Fix not validated: {text}"[:4000],
                    data={"outcome": verdict.outcome, "reasons": lines},
                    at=now,
                )


def _path_to_verified(current: Status) -> list[Status]:
    """The moves from `current` to verified, through resolved where needed."""
    if current is Status.resolved:
        return [Status.verified]
    if current in (Status.triaged, Status.investigating, Status.mitigated, Status.reopened):
        return [Status.resolved, Status.verified]
    if current is Status.new:
        return [Status.triaged, Status.resolved, Status.verified]
    return []


async def auto_resolve(state: AppState) -> None:
    """Resolve the blips nobody worked on (`detection.auto_resolve_after`)."""
    after = state.config.detection.auto_resolve_after
    if after is None or after.total_seconds() <= 0:
        return
    async with state.sessions() as session, session.begin():
        done = await service.auto_resolve(
            session=session, matrix=state.matrix, after=after, now=utcnow()
        )
    if done:
        log.info("auto-resolved issues %s", ", ".join(map(str, done)))


async def warm_correlation(state: AppState) -> None:
    """Read the open issues into the correlator's cache at start, so that the first signal
    after a restart (the first of a storm, as likely as not) does not wait for the full read
    (tens of ms per thousand open issues). Signals that arrive meanwhile wait for it on the
    cache's lock, as they would have read it themselves."""
    attach = state.attach
    if not isinstance(attach, Correlator):
        return
    started = time.perf_counter()
    try:
        async with state.sessions() as session:
            count = await attach.load(session)
    except Exception:
        log.warning("correlation: could not read the open issues at start", exc_info=True)
        return
    log.info(
        "correlation: %d open issue%s read at start in %.0f ms",
        count,
        "" if count == 1 else "s",
        (time.perf_counter() - started) * 1000,
    )


async def load_rules(state: AppState) -> None:
    """The detector's rules: configured, added through the API, and the defaults."""
    async with state.sessions() as session:
        extra = await service.stored_rules(session=session)
    runtime(state).detector.rules = state.config.detection.all_rules(extra)


HISTORY_EVERY = 60.0  # seconds between reloads of the stored minute rollups


async def load_history(state: AppState, rt: DetectionRuntime, now: float) -> None:
    """The detector's per-minute history from the stored minute rollups (so baselines survive
    a console restart), reloaded once a minute: minutes close once a minute."""
    if now - rt.history_loaded_at < HISTORY_EVERY:
        return
    end = int(now // 60) * 60
    start = end - 60 * (rt.detector.baseline_minutes + 3)
    async with state.sessions() as session:
        history = await service.route_minutes(session=session, start=start, end=end)
    rt.detector.set_history(history)
    rt.history_loaded_at = now


async def tick(rt: DetectionRuntime, now: float) -> list[Finding]:
    """`Detector.tick`, one route at a time with a turn of the event loop between routes:
    the console's requests (the status page above all, during an outage) are not held up
    behind the evaluation of every route."""
    findings: list[Finding] = []
    for route in list(rt.live.routes):
        findings.extend(rt.detector.tick_route(route, now))
        await asyncio.sleep(0)
    return findings


async def run_detection(state: AppState, stop: asyncio.Event) -> None:
    """The detection loop: every `detection.interval`, evaluate, emit, validate."""
    rt = runtime(state)
    await load_rules(state)
    interval = state.config.detection.interval.total_seconds()
    async with httpx.AsyncClient(timeout=1.0) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await poll_health(state, rt, client)
                await load_history(state, rt, time.time())
                findings = await tick(rt, time.time())
                await emit_findings(state, findings)
                rt.findings += len(findings)
                await validate(state, rt)
                await auto_resolve(state)
            except Exception:
                # detection must outlive a passing store error; the next pass retries
                log.exception("detection pass failed")
            rt.last_tick_ms = (time.perf_counter() - started) * 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


def route_summary(rt: DetectionRuntime, route: str, seconds: float = 60) -> dict[str, object]:
    """The live numbers of one route over the last `seconds` (for views and the demo)."""
    now = time.time()
    stats = rt.live.stats(route, now - seconds, now)
    return {
        "route": route,
        "summary": describe(stats),
        "requests": stats.requests,
        "error_rate": metric_value(stats, Metric.error_rate),
        "p95_ms": stats.p95,
        "healthy_targets": stats.healthy_targets,
        "firing": [rule for rule, r in rt.detector.firing() if r == route],
    }

"""Background work of launches: multiwindow burn-rate alerts on every SLO of a running
launch, fired as signals through the normal intake (dedup, correlation, response), and a
periodic exit-criteria evaluation kept in the history. Each pass reads the launches afresh
(the config file's and those made through the API), so a launch made through the API is
watched from the next pass on, without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Set
from dataclasses import dataclass, field
from datetime import datetime

from hypercare.api.state import AppState
from hypercare.feedback import service as feedback
from hypercare.feedback.drafts import SignalDraft
from hypercare.launch import rules, service
from hypercare.launch.config import LaunchConfig, SloConfig
from hypercare.launch.rules import BurnAlert, LaunchState
from hypercare.store.base import utcnow
from hypercare.telemetry import jobs as telemetry_jobs

log = logging.getLogger("hypercare.launch")

INTERVAL = 30.0  # seconds between burn-rate evaluations
EVALUATE_EVERY = 300.0  # seconds between stored exit-criteria evaluations
RUNNING = frozenset({LaunchState.active, LaunchState.extended, LaunchState.exit_review})
SOURCE = "slo"


@dataclass
class LaunchRuntime:
    """What the loop remembers between passes, in `AppState.runtimes`."""

    # (launch, slo) → the action level firing ("page"/"ticket"), to send a resolve once
    firing: dict[tuple[str, str], str] = field(default_factory=dict)
    last_cycle_ms: float = 0.0
    cycles: int = 0
    evaluated_at: float = 0.0
    # launches this process evaluated at least once: a new one (made through the API) is
    # evaluated at the next pass instead of waiting for the next full round
    evaluated: set[str] = field(default_factory=set)


def runtime(state: AppState) -> LaunchRuntime:
    return state.runtimes.setdefault(LaunchRuntime, LaunchRuntime)


def burn_draft(
    launch: LaunchConfig,
    slo: SloConfig,
    alert: BurnAlert | None,
    *,
    route: str | None,
    component: str | None,
    at: datetime,
) -> SignalDraft:
    """A firing (or, with no alert, resolved) signal of one SLO; its severity maps to the
    matrix through the priority table (critical → P1, high → P2, warning → P3 by default)."""
    if alert is None:
        summary = f"SLO {slo.name} of {launch.name}: burn rate back under every threshold"
        return SignalDraft(
            kind="system",
            source=SOURCE,
            summary=summary,
            dedup_key=f"slo:{launch.name}:{slo.name}",
            raw={"launch": launch.name, "slo": slo.name},
            body=summary,
            status="resolved",
            occurred_at=at,
            component=component,
            route=route,
            labels={"launch": launch.name, "slo": slo.name},
        )
    text = rules.describe_burn(slo, alert)
    evidence = {"launch": launch.name, "slo": slo.name, "target": slo.target, **alert.evidence()}
    return SignalDraft(
        kind="system",
        source=SOURCE,
        summary=f"{launch.name}: {text}"[:500],
        dedup_key=f"slo:{launch.name}:{slo.name}",
        raw=evidence,
        body=text + f"\nlong window: {alert.long_calls[1]} bad of {alert.long_calls[0]} calls; "
        f"short window: {alert.short_calls[1]} bad of {alert.short_calls[0]} calls",
        severity=alert.window.severity,
        status="firing",
        occurred_at=at,
        component=component,
        route=route,
        labels={"launch": launch.name, "slo": slo.name, "action": alert.window.action},
    )


async def burn_cycle(state: AppState, rt: LaunchRuntime, now: datetime) -> int:
    """One pass over every SLO of every running launch; returns the signals sent."""
    config = state.config
    comps = service.route_components(config)
    live = telemetry_jobs.collector_of(state).live
    sent = 0
    async with state.sessions() as session:
        recs = await service.records(session=session)
        every = await service.launches(session=session, config=config)
    running = [
        launch
        for launch in every
        if launch.slos and service.state_of(launch, recs.get(launch.name), now) in RUNNING
    ]
    if not running:
        return 0
    drafts: list[SignalDraft] = []
    async with state.sessions() as session:
        for launch in running:
            points = await service.burn_points(
                session=session,
                live=live,
                slos=launch.slos,
                route_components=comps,
                now=now.timestamp(),
            )
            for slo in launch.slos:
                alert = rules.burn_alert(
                    points.get(slo.name, []), target=slo.target, now=now.timestamp()
                )
                key = (launch.name, slo.name)
                before = rt.firing.get(key)
                level = None if alert is None else alert.window.action + str(alert.window.factor)
                if level == before:
                    continue
                if alert is None and before is None:
                    continue
                routes = rules.slo_routes(slo, comps)
                route = routes[0] if len(routes) == 1 else None
                component = slo.component or (comps.get(route) if route else None)
                drafts.append(
                    burn_draft(launch, slo, alert, route=route, component=component, at=now)
                )
                if level is None:
                    rt.firing.pop(key, None)
                else:
                    rt.firing[key] = level
    for draft in drafts:
        async with state.sessions() as session, session.begin():
            await feedback.ingest(
                session=session,
                matrix=state.matrix,
                priorities=config.feedback.priorities,
                drafts=[draft],
                attach=state.attach,
            )
        sent += 1
        log.info("%s %s", draft.status, draft.summary)
    return sent


async def evaluate_all(state: AppState, now: datetime, *, skip: Set[str] = frozenset()) -> set[str]:
    """Evaluate every running launch's exit criteria (but those in `skip`) and keep changed
    outcomes; returns the names evaluated."""
    live = telemetry_jobs.collector_of(state).live
    done: set[str] = set()
    async with state.sessions() as session, session.begin():
        recs = await service.records(session=session)
        for launch in await service.launches(session=session, config=state.config):
            if launch.name in skip:
                continue
            if service.state_of(launch, recs.get(launch.name), now) not in RUNNING:
                continue
            await service.exit_check(
                session=session, live=live, config=state.config, name=launch.name, now=now
            )
            done.add(launch.name)
    return done


async def run_launches(state: AppState, stop: asyncio.Event, interval: float = INTERVAL) -> None:
    rt = runtime(state)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            now = utcnow()
            await burn_cycle(state, rt, now)
            if time.time() - rt.evaluated_at >= EVALUATE_EVERY:
                rt.evaluated |= await evaluate_all(state, now)
                rt.evaluated_at = time.time()
            else:
                rt.evaluated |= await evaluate_all(state, now, skip=rt.evaluated)
        except Exception:
            # a passing store error must not end the loop; the next pass retries
            log.exception("launch pass failed")
        rt.cycles += 1
        rt.last_cycle_ms = (time.perf_counter() - started) * 1000
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)

"""The outbox and the dispatcher: one background loop in the console process.

Each turn of the loop
1. reads committed timeline entries past the outbox cursor and writes a delivery row for
   every channel the routing rules name (the cursor moves in the same transaction);
2. stores the outcomes of the sends that finished since the last turn (one transaction);
3. starts a send for every due delivery that is not already in flight.

Sends run as tasks bounded by `response.dispatch.concurrency`, so a slow or dead receiver
delays nobody: not the loop, not the tracker, intake or detection. Delivery is at least
once: a send whose outcome was not stored before a crash is sent again after the restart
with the same idempotency key, so the receiver can tell it already has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from hypercare.api.state import AppState
from hypercare.detection import jobs as detection_jobs
from hypercare.response import rules, service
from hypercare.response.channels import (
    HttpNotifier,
    Notifier,
    Notifiers,
    Outbound,
    Outcome,
    Resolver,
    new_client,
    pin_public,
    system_resolver,
)
from hypercare.response.config import ChannelConfig
from hypercare.response.models import Delivery
from hypercare.store.base import utcnow
from hypercare.triage.models import Issue, TimelineEntry

log = logging.getLogger("hypercare.response")

# outcomes stored per transaction while a backlog drains (fewer, larger transactions leave
# more of the event loop to the sends); the last send of a burst stores at once
STORE_EVERY = 128
Reactor = Callable[
    [AsyncSession, Sequence[tuple[TimelineEntry, Issue]], datetime], Awaitable[list[Delivery]]
]

DEFAULT_CONSOLE_URL = "http://127.0.0.1:8700"


@dataclass
class ResponseRuntime:
    """The response domain's long-lived state, kept in `AppState.runtimes`."""

    notifiers: Notifiers | None = None
    # links in messages start with this (response.base_url, else the console's address)
    base_url: str = DEFAULT_CONSOLE_URL
    key: bytes = b""
    secrets: dict[str, str] = field(default_factory=dict)
    cursor: int | None = None
    seen: set[int] = field(default_factory=set)
    gaps: dict[int, float] = field(default_factory=dict)
    inflight: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    results: list[tuple[int, Outcome]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    rng: random.Random = field(default_factory=random.Random)
    # how URLs that come through the API are resolved before the private-address check
    resolve: Resolver = system_resolver
    owns_client: bool = False
    # sends at the same time (response.dispatch.concurrency); made by `start`
    slots: asyncio.Semaphore | None = None
    concurrency: int = 32
    # the dispatcher's own wake-up (outcomes to store, deliveries made)
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    # more reactions to the committed entries of an outbox pass, in its transaction (other
    # domains' deliveries: hypercare.comms), added by the composition root
    reactors: list[Reactor] = field(default_factory=list)
    sent: int = 0
    failed: int = 0


def runtime(state: AppState) -> ResponseRuntime:
    return state.runtimes.setdefault(ResponseRuntime, ResponseRuntime)


def nudge(state: AppState) -> None:
    """Wake the outbox loop and the dispatcher now (a replay, a fresh commit to announce)."""
    rt = runtime(state)
    rt.wake.set()
    rt.kick.set()


def base_url(state: AppState) -> str:
    configured = state.config.response.base_url
    if configured:
        return configured.rstrip("/")
    console = state.console_url
    return console.rstrip("/") if console else DEFAULT_CONSOLE_URL


async def start(state: AppState) -> ResponseRuntime:
    """Load the signing key and the generated webhook secrets, and place the cursor (at the
    newest entry on a first start: history is not announced)."""
    rt = runtime(state)
    rt.base_url = base_url(state)
    cfg = state.config.response
    rt.concurrency = cfg.dispatch.concurrency
    rt.slots = asyncio.Semaphore(rt.concurrency)
    if rt.notifiers is None:
        rt.notifiers = Notifiers.standard(new_client(max_connections=rt.concurrency))
        rt.owns_client = True
    async with state.sessions() as session, session.begin():
        rt.key = await service.signing_key(session=session, config=cfg)
        for ch in cfg.channels:
            if ch.type == "webhook":
                rt.secrets[ch.name] = ch.secret or await service.channel_secret(
                    session=session, channel=ch.name, key=rt.key
                )
        # people's contacts: through a channel they sign with its secret; a contact's own
        # webhook URL gets a generated secret of its own
        for person in cfg.people:
            for j, contact in enumerate(person.contacts):
                if contact.type != "webhook":
                    continue
                name = f"{person.name}/{j}"
                if contact.channel:
                    rt.secrets[name] = rt.secrets.get(contact.channel, "")
                else:
                    rt.secrets[name] = await service.channel_secret(
                        session=session, channel=name, key=rt.key
                    )
        stored = await service.get_setting(session=session, name=service.CURSOR)
        if stored is None:
            rt.cursor = await service.newest_entry_id(session=session)
            await service.set_setting(session=session, name=service.CURSOR, value=str(rt.cursor))
        else:
            rt.cursor = int(stored)
    return rt


async def outbox_pass(state: AppState, rt: ResponseRuntime) -> int:
    """Turn newly committed timeline entries into deliveries; returns how many were made."""
    cfg = state.config.response
    if rt.cursor is None:
        raise RuntimeError("response.jobs.start() places the cursor first")
    after = max(rt.seen, default=rt.cursor)
    async with state.sessions() as session, session.begin():
        entries = await service.entries_after(
            session=session, after=after, also=rt.gaps, limit=cfg.dispatch.batch
        )
        made = await service.make_deliveries(
            session=session,
            config=cfg,
            entries=entries,
            base_url=rt.base_url,
            key=rt.key,
            now=utcnow(),
        )
        made += await service.react(
            session=session,
            config=cfg,
            matrix=state.matrix,
            entries=entries,
            base_url=rt.base_url,
            key=rt.key,
            now=utcnow(),
            impact=impact_probe(state) if cfg.impact_gate else None,
        )
        if cfg.impact_gate is not None:
            made += await service.recheck_impact(
                session=session,
                config=cfg,
                matrix=state.matrix,
                base_url=rt.base_url,
                key=rt.key,
                now=utcnow(),
                impact=impact_probe(state),
            )
        # during a storm, "created" messages and pages are grouped per channel
        made = await service.gather_storm(session=session, config=cfg, made=made, now=utcnow())
        # other domains' deliveries (hypercare.comms: subscribers, reporters) are never grouped
        for reactor in rt.reactors:
            made += await reactor(session, entries, utcnow())
        seen = rt.seen | {e.id for e, _ in entries}
        cursor, gaps = rules.advance_cursor(
            rt.cursor,
            seen,
            rt.gaps,
            now=time.monotonic(),
            wait=cfg.dispatch.gap_wait.total_seconds(),
        )
        if cursor != rt.cursor:
            await service.set_setting(session=session, name=service.CURSOR, value=str(cursor))
    # only once committed: a failed pass is simply done again
    rt.cursor, rt.gaps = cursor, gaps
    rt.seen = {i for i in seen if i > cursor}
    return len(made)


def impact_probe(state: AppState) -> Callable[[Issue], rules.Impact]:
    """Read the gateway's live windows (detection's, fed on ingest) for an issue's route, or
    for every route tagged with its component."""
    gate = state.config.response.impact_gate
    live = detection_jobs.runtime(state).live
    by_component: dict[str, list[str]] = {}
    by_path: dict[str, str] = {}
    for route in state.config.all_routes():
        component = route.tags.get("component")
        if component:
            by_component.setdefault(component, []).append(route.name)
        if route.match.path:
            by_path[route.match.path] = route.name

    def probe(issue: Issue) -> rules.Impact:
        if gate is None:  # pragma: no cover - only made when the gate is configured
            return rules.Impact(None, "no impact gate configured")
        routes: list[str] = []
        if issue.route:
            routes.append(by_path.get(issue.route, issue.route))
        elif issue.component:
            routes.extend(by_component.get(issue.component, []))
        if not routes:
            return rules.Impact(
                None, "no route or component of the gateway to check: on-call is paged"
            )
        now = time.time()
        window = gate.window.total_seconds()
        stats = [live.stats(r, now - window, now) for r in routes]
        return rules.impact_verdict(
            stats,
            window=gate.window,
            min_requests=gate.min_requests,
            error_rate=gate.error_rate,
            p95_ms=gate.p95_ms,
        )

    return probe


async def escalation_pass(state: AppState, rt: ResponseRuntime) -> int:
    """Run the escalation steps that are due; returns how many deliveries they made."""
    if not state.config.response.policies:
        return 0
    async with state.sessions() as session, session.begin():
        made = await service.escalation_pass(
            session=session,
            config=state.config.response,
            base_url=rt.base_url,
            key=rt.key,
            now=utcnow(),
            urgent_priority=state.matrix.levels[0].level if state.matrix.levels else "P1",
        )
        made = await service.gather_storm(
            session=session, config=state.config.response, made=made, now=utcnow()
        )
    return len(made)


async def store_results(state: AppState, rt: ResponseRuntime) -> int:
    if not rt.results:
        return 0
    results, rt.results = rt.results, []
    d = state.config.response.dispatch
    try:
        async with state.sessions() as session, session.begin():
            await service.record_attempts(
                session=session,
                outcomes=[(i, o.ok, o.status, o.error) for i, o in results],
                final={i for i, o in results if not o.retry},
                retry_after=lambda attempt: rules.backoff(
                    attempt, base=d.backoff, cap=d.max_backoff, jitter=rt.rng.random()
                ),
                max_attempts=d.max_attempts,
                now=utcnow(),
            )
    except BaseException:
        rt.results = results + rt.results  # not stored: try again next turn
        raise
    for _, outcome in results:
        if outcome.ok:
            rt.sent += 1
        else:
            rt.failed += 1
    return len(results)


async def dispatch_pass(state: AppState, rt: ResponseRuntime) -> int:
    """Claim the due deliveries not in flight (up to `dispatch.batch` claimed at a time) and
    start a send for each; at most `dispatch.concurrency` of them talk to receivers at once,
    the rest wait their turn. Returns how many were claimed."""
    d = state.config.response.dispatch
    room = d.batch - len(rt.inflight)
    if room <= 0:
        return 0
    async with state.sessions() as session:
        due = await service.due_deliveries(
            session=session,
            now=utcnow(),
            limit=room,
            # in flight, or ended with the outcome not stored yet: not due again
            skip=[*rt.inflight, *(i for i, _ in rt.results)],
        )
    notifiers = rt.notifiers
    if notifiers is None:
        raise RuntimeError("response.jobs.start() sets up the notifiers first")
    if rt.slots is None:
        rt.slots = asyncio.Semaphore(d.concurrency)
    allow = state.config.response.allow_private
    for delivery in due:
        channel = state.config.response.channel(delivery.channel)
        # a subscriber's own URL ("public" trust): guarded again at the send
        public = channel is None
        channel = channel or adhoc(delivery.channel, delivery.message)
        if channel is None:
            outcome = Outcome(False, 410, f"channel {delivery.channel!r} is no longer configured")
            rt.results.append((delivery.id, outcome))
            continue
        channel = addressed(channel, delivery.message)
        outbound = Outbound(
            delivery_id=delivery.id,
            channel=channel,
            message=delivery.message,
            idempotency_key=delivery.idempotency_key,
            secret=rt.secrets.get(channel.name) if channel.type == "webhook" else None,
        )
        notifier = notifiers.for_channel(channel)
        rt.inflight[delivery.id] = asyncio.create_task(
            _send(rt, notifier, outbound, rt.slots, allow if public else None),
            name=f"notify-{delivery.id}",
        )
    return len(due)


def adhoc(name: str, message: Mapping[str, Any]) -> ChannelConfig | None:
    """The webhook of a status page subscriber (``subscriber>…`` deliveries, whose message
    carries the URL, checked by the URL guard when it was subscribed and again at each
    send, see `_send`)."""
    url = message.get("url")
    if name.startswith("subscriber>") and isinstance(url, str):
        return ChannelConfig(name="subscriber", type="webhook", url=url)
    return None


def addressed(channel: ChannelConfig, message: Mapping[str, Any]) -> ChannelConfig:
    """An email channel sent to the recipients a message names itself (`to`: a reporter,
    a subscriber), instead of its configured list."""
    to = message.get("to")
    if channel.type == "email" and isinstance(to, list) and to:
        return channel.model_copy(update={"to": [str(a) for a in to][:100]})
    return channel


async def _send(
    rt: ResponseRuntime,
    notifier: Notifier,
    outbound: Outbound,
    slots: asyncio.Semaphore,
    public: Sequence[str] | None = None,
) -> None:
    """One send. With `public` (the allow-list `response.allow_private`), the URL came from
    the API or the public: resolved and checked again now, and sent to the checked
    addresses only (a refusal is final)."""
    try:
        async with slots:
            checked = outbound if public is None else await pin_public(outbound, public, rt.resolve)
            outcome = checked if isinstance(checked, Outcome) else await notifier.send(checked)
    except Exception as exc:  # a notifier bug must not lose the delivery
        log.exception("notifier failed on delivery %d", outbound.delivery_id)
        outcome = Outcome(False, None, f"internal error: {type(exc).__name__}")
    finally:
        rt.inflight.pop(outbound.delivery_id, None)
    rt.results.append((outbound.delivery_id, outcome))
    # outcomes are stored in batches (one transaction each): wake the dispatcher when a
    # pool's worth of sends has ended, or the last one; its poll interval covers the rest
    if not rt.inflight or len(rt.results) >= max(rt.concurrency, STORE_EVERY):
        rt.kick.set()


async def step(state: AppState, rt: ResponseRuntime) -> None:
    """One turn of the loop."""
    await outbox_pass(state, rt)
    await escalation_pass(state, rt)
    await store_results(state, rt)
    await dispatch_pass(state, rt)


async def settle(state: AppState, rt: ResponseRuntime, timeout: float = 10.0) -> None:
    """Wait for the sends in flight (bounded) and store their outcomes (tests, shutdown)."""
    if rt.inflight:
        await asyncio.wait(list(rt.inflight.values()), timeout=timeout)
    await store_results(state, rt)


async def _wait(events: list[asyncio.Event], timeout: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        for w in waiters:
            w.cancel()


async def run_dispatch(state: AppState, rt: ResponseRuntime, stop: asyncio.Event) -> None:
    """The dispatcher: store the outcomes that came in (one transaction), claim what is due,
    again, as long as there is work; otherwise wait for a kick or the poll interval."""
    interval = state.config.response.dispatch.poll_interval.total_seconds()
    while not stop.is_set():
        rt.kick.clear()
        try:
            await store_results(state, rt)
            await dispatch_pass(state, rt)
        except Exception:
            log.exception("response dispatch pass failed")
        await _wait([rt.kick, stop], interval)


_WROTE = "hypercare.response.timeline_written"


def watch_commits(state: AppState, rt: ResponseRuntime) -> Callable[[], None]:
    """Wake the outbox loop as soon as a transaction of this process that added timeline
    entries (through the ORM) commits, instead of at its next poll; entries committed by
    other processes are still found by polling. Returns the function that stops watching."""
    engine = state.engine.sync_engine

    def before_flush(session: Session, _ctx: object, _instances: object) -> None:
        try:
            ours = session.get_bind() is engine
        except Exception:  # an unbound session of someone else's
            return
        if ours and any(isinstance(o, TimelineEntry) for o in session.new):
            session.info[_WROTE] = True

    def after_commit(session: Session) -> None:
        if session.info.pop(_WROTE, False):
            rt.wake.set()

    def after_rollback(session: Session) -> None:
        session.info.pop(_WROTE, None)

    hooks = (
        ("before_flush", before_flush),
        ("after_commit", after_commit),
        ("after_soft_rollback", lambda s, _t: after_rollback(s)),
    )
    for name, fn in hooks:
        event.listen(Session, name, fn)

    def stop() -> None:
        for name, fn in hooks:
            with contextlib.suppress(Exception):
                event.remove(Session, name, fn)

    return stop


async def run_response(state: AppState, stop: asyncio.Event) -> None:
    """The outbox and escalation loop, with the dispatcher beside it as a second task: a
    backlog of sends never waits for an outbox pass, nor the outbox for the sends."""
    rt = runtime(state)
    interval = state.config.response.dispatch.poll_interval.total_seconds()
    dispatcher = asyncio.create_task(run_dispatch(state, rt, stop), name="response-dispatch")
    unwatch = watch_commits(state, rt)
    try:
        while not stop.is_set():
            rt.wake.clear()
            try:
                made = await outbox_pass(state, rt)
                made += await escalation_pass(state, rt)
                if made:
                    rt.kick.set()
            except Exception:
                # a passing store error must not stop notifications; the next turn retries
                log.exception("response pass failed")
            await _wait([rt.wake, stop], interval)
    finally:
        unwatch()
        stop_dispatch = not dispatcher.done()
        if stop_dispatch:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await dispatcher
        with contextlib.suppress(Exception):
            await settle(state, rt, timeout=2.0)
        for task in list(rt.inflight.values()):
            task.cancel()
        await close(rt)


async def close(rt: ResponseRuntime) -> None:
    """Close the outbound client `start` made (not one a test handed in)."""
    if rt.owns_client and rt.notifiers is not None:
        for notifier in rt.notifiers.by_kind.values():
            if isinstance(notifier, HttpNotifier) and not notifier.client.is_closed:
                await notifier.client.aclose()

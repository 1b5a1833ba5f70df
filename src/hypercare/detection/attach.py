"""The correlating attach step: which open issue a new signal belongs to, and why.

It replaces the dedup-only step of the feedback intake (same signature, see
`hypercare.feedback.attach.attach`) and works a batch at a time (`Correlator.attach_many`,
which the intake calls with every signal of a group commit):

1. **load** — the context, once per batch: the open issues' features from the correlator's
   `OpenIssues` cache (brought up to date with what other transactions committed since it was
   last read), the batch's open dedup groups, and the calls its signals cite (request and trace
   ids, from their fields and their text) in one call-log lookup per kind;
2. **decide** — `correlate.decide(features, context)` for each signal: a pure function that
   joins the dedup group, links to an issue with a score and reasons, or opens a new issue;
3. **apply** — through the feedback and triage services; the batch's context is updated with
   each applied decision, so the next signal sees it without a query. Priorities are raised
   once per issue at the end of the batch, from the impact table, only on strong evidence and
   never over a person's choice.

Corrections made by people (split, unlink) are respected: a dedup key taken off an issue never
links back to it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    CompoundSelect,
    Table,
    bindparam,
    func,
    inspect,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from hypercare.config import HypercareConfig
from hypercare.detection import correlate
from hypercare.detection.config import DetectionConfig
from hypercare.detection.correlate import Action, Decision
from hypercare.detection.impact import Impact, suggest_priority
from hypercare.detection.models import SignalExclusion, SignalLink
from hypercare.feedback import attach as dedup
from hypercare.feedback.models import Signal, SignalGroup
from hypercare.store import bulk
from hypercare.store.ids import preassign_new, row_values
from hypercare.telemetry import calls
from hypercare.telemetry.segments import F_REQUEST_ID, F_ROUTE, F_TIME, F_TRACE_ID, REQUEST, TRACE
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, TimelineEntry
from hypercare.triage.rules import DONE, Matrix

# how long before a report the calls it cites (request ids, trace id) are searched for
CITED_CALLS_BEFORE = 1800.0

AUTOMATION = ("hypercare", "feedback", "detection", dedup.ACTOR)
_DONE = frozenset(s.value for s in DONE)
_MAX_OPEN = 10_000  # open issues kept and scored against (the most recently updated)
# timeline entries that move signals between issues: their issues' features are read again
_MOVES = ("merge", "split", "unlink")
# ids of rows committed by concurrent transactions can be lower than ids already read (a
# sequence hands them out before the commit): each refresh reads this far back again
_ID_MARGIN = 256
_VERIFY_SECONDS = 60.0  # and the open issues' last changes are compared this often
_CHUNK = 500  # ids per IN list
_PLACEHOLDER = 1 << 62  # ids given to the issues a batch decides to open, before they exist
AUTO_RESOLVED = "auto-resolved"  # the label hypercare puts on an issue it resolved by itself
_REOPENABLE = frozenset({"resolved", "verified"})
# the columns of a signal the attach step may set
_SIGNAL_DECIDED = ("issue_id", "route", "component", "labels")


@dataclass
class _Entry:
    """One open issue and what its signals say, as the cache keeps it."""

    status: str
    updated_at: datetime
    created_at: datetime
    route: str | None
    component: str | None
    title: str
    routes: set[str] = field(default_factory=set)
    components: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    excluded_keys: set[str] = field(default_factory=set)
    first_seen: float | None = None
    last_seen: float | None = None
    built: correlate.IssueFeatures | None = None


@dataclass
class OpenIssues:
    """The open issues' features, kept by the correlator between transactions.

    Only committed state is kept: a batch works on its own copy (`correlate.Context`), and what
    it changes reaches the cache when a later batch reads the committed changes since the
    last read — the issues with new timeline entries (every issue change writes one) and the
    new signals. It is read in full once; then every `_VERIFY_SECONDS` the open issues' status
    and `updated_at` are compared with it and the issues that differ read again (rows a
    concurrent transaction committed later than the id margin reaches back), never the whole
    cache."""

    entries: dict[int, _Entry] = field(default_factory=dict)
    signal_mark: int = 0  # highest signal id read
    timeline_mark: int = 0  # highest timeline entry id read
    # ids read within `_ID_MARGIN` of the marks: read again, they are not folded in twice
    seen_entries: set[int] = field(default_factory=set)
    seen_signals: set[int] = field(default_factory=set)
    loaded_at: float | None = None  # time.monotonic() of the last full read or check
    full_reads: int = 0
    verifies: int = 0  # checks of the open issues against the cache (`_VERIFY_SECONDS`)
    version: int = 0  # changes whenever an entry does
    # the issues whose entries changed since the snapshot was last brought up to date (None:
    # all of them, after a full read)
    dirty: set[int] | None = None
    refreshes: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def mark_dirty(self, ids: Iterable[int]) -> None:
        """Issues whose entry changed (or went): put again in the snapshot."""
        if self.dirty is not None:
            self.dirty.update(ids)

    def invalidate(self) -> None:
        """Read everything again before the next batch."""
        self.loaded_at = None


class _Cited(NamedTuple):
    ident: str
    route: str
    at: float


class Correlator:
    """The attach step with correlation; built once from the configuration and kept in the
    app state (`AppState.attach`), with its `open_issues` cache."""

    def __init__(self, config: HypercareConfig, *, correlation: bool = True) -> None:
        self.detection: DetectionConfig = config.detection
        self.correlation = correlation
        upstream_of = {r.name: r.upstream or None for r in config.all_routes()}
        self.routes = [
            correlate.RouteInfo(
                name=r.name,
                path=r.match.path,
                component=r.tags.get("component"),
                description=r.tags.get("description", ""),
                upstream=upstream_of.get(r.name),
            )
            for r in config.all_routes()
        ]
        self.by_name = {r.name: r for r in self.routes}
        self.components = {r.name: r.component for r in self.routes if r.component}
        self.upstreams = {r.name: r.upstream for r in self.routes if r.upstream}
        self.criticality = {r.name: r.tags.get("criticality") for r in config.all_routes()}
        self.open_issues = OpenIssues()
        self._kept = correlate.Snapshot()  # the cache's features, indexed
        self._kept_version = -1

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
        (issue,) = await self.attach_many(
            session=session,
            matrix=matrix,
            signals=[(signal, create)],
            priorities=priorities,
            known=known,
        )
        return issue

    async def attach_many(
        self,
        *,
        session: AsyncSession,
        matrix: Matrix,
        signals: Sequence[tuple[Signal, bool]],
        priorities: Mapping[str, Mapping[str, str]],
        known: dedup.OpenGroups | None = None,
        unwritten: Sequence[tuple[Any, Sequence[Any]]] = (),
    ) -> list[Issue | None]:
        """Attach stored (flushed) signals in order, with the same outcome as one at a time;
        `create` False: the signal may join an issue but not open one. `unwritten`: see
        `feedback.attach.BatchAttachStep` (the signals may be among them: nothing before the
        batch's writes reads them back).

        All decisions are taken first, over the batch's context (an issue the batch opens
        gets a placeholder id that later signals may link to), then the issues they name are
        read in one query and the decisions applied, without a query per signal."""
        if not signals:
            return []
        if known is None:
            known = await dedup.open_groups(session=session, keys=[s.dedup_key for s, _ in signals])
        # nothing is written until the batch is decided and applied but the issues it opens
        # (then the rest in one `bulk.write`, after a flush of what the session still holds;
        # the queries before read only committed rows or other tables)
        writes = _Writes(unwritten=list(unwritten))
        with session.no_autoflush:
            out, impact, opened = await self._decide_and_apply(
                session, matrix, signals, priorities, known, writes
            )
        await preassign_new(session, TimelineEntry, SignalGroup)
        # the changed groups and issues go with the batch's other rows, not in a flush
        changed = bulk.take_dirty(session, SignalGroup, Issue)
        await session.flush()
        await writes.write(session, *changed)
        if impact:
            # every signal of an issue the batch opened is the batch's: its reports are counted
            # here, not read back
            reports = Counter(
                issue.id
                for (signal, _), issue in zip(signals, out, strict=True)
                if issue is not None and issue.id in opened and signal.kind == "user"
            )
            news = {i: reports.get(i, 0) for i in opened}
            await self._reprioritise(session, matrix, list(impact.values()), news)
        return out

    async def _decide_and_apply(
        self,
        session: AsyncSession,
        matrix: Matrix,
        signals: Sequence[tuple[Signal, bool]],
        priorities: Mapping[str, Mapping[str, str]],
        known: dedup.OpenGroups,
        writes: _Writes,
    ) -> tuple[list[Issue | None], dict[int, _ImpactIn], set[int]]:
        """The issue of each signal, the issues whose priority the batch may change, and the
        issues the batch opened."""
        for signal, _ in signals:
            self._normalise_route(signal)
        cited = await self._cited(session, [s for s, _ in signals])
        features = [self._features(s, c, cited.get(s.id, [])) for s, c in signals]
        context = await self._context(session, [s for s, _ in signals], known)
        decisions = self._decide_all([s for s, _ in signals], features, context)
        wanted = sorted(
            {
                d.issue_id
                for d in decisions
                if d.issue_id is not None
                and d.issue_id < _PLACEHOLDER
                and d.action in (Action.link, Action.reopen)
            }
        )
        # the issues used, by decision id: placeholders become the issues opened, and the
        # linked ones are read here in one query (and held: the identity map keeps weak refs)
        made: dict[int, Issue] = {}
        for chunk in _chunks(wanted):
            for row in await session.scalars(_ISSUES_BY_ID(session), {"ids": chunk}):
                made[row.id] = row
        # the issues the batch opens, inserted together (the signals are written: on SQLite
        # the write lock is held); `_apply` puts each signal on its own
        opening = [
            (s, d.issue_id)
            for (s, _), d in zip(signals, decisions, strict=True)
            if d.action is Action.open and d.issue_id is not None
        ]
        premade: dict[int, Issue] = {}
        if opening:
            opened = await triage.create_issues(
                session=session,
                matrix=matrix,
                items=[dedup.new_issue(s, matrix, priorities) for s, _ in opening],
                write_locked=True,
                entries=writes.entries,
            )
            premade = {p: issue for (_, p), issue in zip(opening, opened, strict=True)}
        made_ids = {issue.id for issue in premade.values()}
        impact: dict[int, _ImpactIn] = {}
        out: list[Issue | None] = []
        for signal, decision in zip([s for s, _ in signals], decisions, strict=True):
            issue = await self._apply(
                session, matrix, priorities, signal, decision, known, made, premade, writes
            )
            out.append(issue)
            if issue is not None and decision.reprioritise and issue.status not in _DONE:
                impact.setdefault(issue.id, _ImpactIn(issue, []))[1].append(signal)
        if premade:  # what is left of it went unused
            made_ids -= {issue.id for issue in premade.values()}
            await _drop_unused(session, list(premade.values()), writes)
        writes.take_decided(signals)
        return out, impact, made_ids

    def _decide_all(
        self,
        signals: Sequence[Signal],
        features: Sequence[correlate.SignalFeatures],
        context: correlate.Context,
    ) -> list[Decision]:
        """`correlate.decide` for each signal in order, each seeing the ones before it."""
        decisions: list[Decision] = []
        placeholder = _PLACEHOLDER
        for signal, feat in zip(signals, features, strict=True):
            decision = correlate.decide(feat, context)
            if signal.route is None and decision.route:
                # no route stated: one cited through a call, or named in the text
                signal.route = decision.route
                signal.labels = {
                    **(signal.labels or {}),
                    "route_from": decision.route_reason or "",
                }
            if signal.component is None and signal.route:
                signal.component = self.components.get(signal.route)
            if decision.action is Action.open:
                decision = replace(decision, issue_id=placeholder)
                placeholder += 1
            if decision.action is not Action.none and decision.issue_id is not None:
                if decision.action is not Action.join_group:
                    context.groups[signal.dedup_key] = correlate.GroupRef(decision.issue_id, True)
                self._note(context, decision.issue_id, signal, feat)
            decisions.append(decision)
        return decisions

    # --- load ----------------------------------------------------------------------------

    def _normalise_route(self, signal: Signal) -> None:
        route = self.route_of(signal.route)
        if route and signal.route != route:
            # a URL path that a gateway route matches: the route it is, the path as a label
            # (a path no route matches stays as the signal's route: it is all we know)
            signal.labels = {**(signal.labels or {}), "url_path": signal.route or ""}
            signal.route = route

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

    async def _cited(
        self, session: AsyncSession, signals: Sequence[Signal]
    ) -> dict[int, list[_Cited]]:
        """The calls each signal cites — by its request ids and trace id, and by the ids its
        text mentions — read from the call log in one lookup per id kind for the batch."""
        wants: dict[int, tuple[list[str], list[str], float, float]] = {}
        for s in signals:
            text_ids = correlate.ids_in_text(_text_of(s))
            request_ids = [i for i in (s.request_ids or []) if i][: correlate.MAX_CITED_IDS]
            trace_ids = [s.trace_id] if s.trace_id else []
            # an id in free text may be either kind: it is looked up as both
            req = list(dict.fromkeys([*request_ids, *text_ids]))[: correlate.MAX_CITED_IDS]
            tra = list(dict.fromkeys([*trace_ids, *text_ids]))[: correlate.MAX_CITED_IDS]
            if req or tra:
                start = s.occurred_at.timestamp() - CITED_CALLS_BEFORE
                end = s.received_at.timestamp() + 60
                wants[s.id] = (req, tra, start, end)
        if not wants:
            return {}
        start = min(w[2] for w in wants.values())
        end = max(w[3] for w in wants.values())
        by_request: dict[str, list[tuple[str, float]]] = {}
        by_trace: dict[str, list[tuple[str, float]]] = {}
        for kind, index, target, pos in (
            (REQUEST, F_REQUEST_ID, by_request, 0),
            (TRACE, F_TRACE_ID, by_trace, 1),
        ):
            idents = sorted({i for w in wants.values() for i in (w[0] if pos == 0 else w[1])})
            if not idents:
                continue
            for row in await calls.find_by_ids(session, kind, idents, start, end):
                if row[F_ROUTE]:
                    target.setdefault(row[index], []).append((row[F_ROUTE], float(row[F_TIME])))
        out: dict[int, list[_Cited]] = {}
        for signal_id, (req, tra, a, b) in wants.items():
            found = [
                _Cited(i, route, at)
                for i in req
                for route, at in by_request.get(i, ())
                if a <= at < b
            ]
            if not found:
                found = [
                    _Cited(i, route, at)
                    for i in tra
                    for route, at in by_trace.get(i, ())
                    if a <= at < b
                ][:1]
            if found:
                out[signal_id] = found
        return out

    def _features(
        self, signal: Signal, create: bool, cited: list[_Cited]
    ) -> correlate.SignalFeatures:
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
            text=_text_of(signal),
            cited_routes={c.ident: c.route for c in cited},
            category=correlate.category(signal.kind, signal.labels),
            status=signal.status or "firing",
            issue_id=signal.issue_id,
            create=create,
        )

    async def _context(
        self, session: AsyncSession, signals: Sequence[Signal], known: dedup.OpenGroups
    ) -> correlate.Context:
        snapshot = correlate.Snapshot()
        since: float | None = None
        if self.correlation:
            snapshot = await self._snapshot(session, signals)
            newest = max(s.received_at for s in signals)
            since = (newest - self.detection.correlation_window).timestamp()
        context = correlate.Context(
            routes=self.routes,
            snapshot=snapshot,
            threshold=self.detection.correlation_threshold,
            correlation=self.correlation,
            since=since,
        )
        for key, (_group, issue) in known.items():
            context.groups[key] = correlate.GroupRef(
                issue.id,
                issue.status not in _DONE,
                reopenable=issue.status in _REOPENABLE and AUTO_RESOLVED in (issue.labels or []),
            )
        return context

    async def load(self, session: AsyncSession) -> int:
        """Read the open issues into the cache now instead of on the first batch; returns how
        many are open (the console does it at start: `detection.jobs.warm_correlation`)."""
        if not self.correlation:
            return 0
        cache = self.open_issues
        async with cache.lock:
            below = int(await session.scalar(select(func.coalesce(func.max(Signal.id), 0))) or 0)
            await self._refresh(session, cache, below + 1)
            self._kept_snapshot()
        return len(cache.entries)

    async def _snapshot(
        self, session: AsyncSession, signals: Sequence[Signal]
    ) -> correlate.Snapshot:
        """The cache, brought up to date, and its `correlate.Snapshot` with it: only the
        issues that changed are put again."""
        cache = self.open_issues
        async with cache.lock:
            await self._refresh(session, cache, min(s.id for s in signals))
            return self._kept_snapshot()

    def _kept_snapshot(self) -> correlate.Snapshot:
        cache = self.open_issues
        snapshot = self._kept
        if cache.version != self._kept_version:
            if cache.dirty is None or self._kept_version < 0:
                for gone in [i for i in snapshot.issues if i not in cache.entries]:
                    snapshot.drop(gone)
                touched: Iterable[int] = list(cache.entries)
            else:
                touched = sorted(cache.dirty)  # only the issues that changed
            for issue_id in touched:
                entry = cache.entries.get(issue_id)
                if entry is None or entry.status in _DONE:
                    snapshot.drop(issue_id)
                else:
                    snapshot.put(self._built(issue_id, entry))
            cache.dirty = set()
            self._kept_version = cache.version
        return snapshot

    def _built(self, issue_id: int, entry: _Entry) -> correlate.IssueFeatures:
        if entry.built is None:
            routes = set(entry.routes)
            components = set(entry.components)
            if entry.route in self.by_name:
                routes.add(entry.route)
            if entry.component:
                components.add(entry.component)
            created = entry.created_at.timestamp()
            entry.built = correlate.IssueFeatures(
                issue_id=issue_id,
                dedup_keys=frozenset(),  # open dedup groups are matched before scoring
                routes=frozenset(routes),
                components=frozenset(components),
                first_seen=entry.first_seen if entry.first_seen is not None else created,
                last_seen=max(entry.last_seen or created, entry.updated_at.timestamp()),
                upstreams=frozenset(u for r in routes if (u := self.upstreams.get(r))),
                categories=frozenset(entry.categories or {correlate.APPLICATION}),
                excluded_keys=frozenset(entry.excluded_keys),
                words=correlate.tokens(entry.title),
            )
        return entry.built

    async def _refresh(self, session: AsyncSession, cache: OpenIssues, below: int) -> None:
        """Bring the cache up to what is committed (and visible to `session`); the signals
        from id `below` on are the batch's own and not read."""
        if cache.loaded_at is None:
            rows = await session.execute(
                select(*_ISSUE_COLUMNS)
                .where(Issue.status.not_in(_DONE))
                .order_by(Issue.updated_at.desc(), Issue.id.desc())
                .limit(_MAX_OPEN)
            )
            cache.entries = {row[0]: _entry(row) for row in rows}
            cache.dirty = None  # everything
            cache.timeline_mark = int(
                await session.scalar(select(func.coalesce(func.max(TimelineEntry.id), 0))) or 0
            )
            cache.signal_mark = 0
            await self._read_signals(session, cache, list(cache.entries), below)
            await self._read_exclusions(session, cache, list(cache.entries))
            cache.signal_mark = below - 1
            cache.seen_entries, cache.seen_signals = set(), set()
            cache.loaded_at = time.monotonic()
            cache.full_reads += 1
            cache.version += 1
            return
        cache.refreshes += 1
        changed: dict[int, bool] = {}  # issue id → signals moved (read them all again)
        if time.monotonic() - cache.loaded_at > _VERIFY_SECONDS:
            # the safety net for what the marks can miss (a row committed late, beyond the
            # margin): the open issues' status and last change, compared with the cache; an
            # issue that differs is read again in full (every change to an issue, a signal
            # joining it included, moves its `updated_at`)
            changed.update(dict.fromkeys(await self._stale(session, cache), True))
            cache.loaded_at = time.monotonic()
            cache.verifies += 1
        margin = _margin(session)
        floor = max(0, cache.timeline_mark - margin)
        after = max(0, cache.signal_mark - margin)
        # one query for what was committed since: the new timeline entries with their
        # issues' rows (`_ISSUE_COLUMNS`; an issue's entries go with it) and the new signals
        # of any issue, the rows of the margin read before left out
        found: dict[int, Any] = {}
        fresh: list[Any] = []
        changes = _CHANGES(session, bool(cache.seen_entries), bool(cache.seen_signals))
        params = {
            "floor": floor,
            "after": after,
            "below": below,
            "seen_entries": sorted(cache.seen_entries),
            "seen_signals": sorted(cache.seen_signals),
        }
        for hit in await session.execute(changes, params):
            if hit[0]:  # a signal: folded below, once the issues' entries are up to date
                if hit[1] not in cache.seen_signals:
                    cache.seen_signals.add(hit[1])
                    fresh.append((hit[2], hit[7], hit[8], hit[3], hit[9], hit[5], hit[6]))
                continue
            entry_id, kind, issue_id = hit[1], hit[3], hit[2]
            # as `_ISSUE_COLUMNS`: id, status, updated_at, created_at, route, component, title
            found[issue_id] = (issue_id, hit[4], hit[5], hit[6], hit[7], hit[8], hit[9])
            if entry_id in cache.seen_entries:
                continue
            cache.seen_entries.add(entry_id)
            changed[issue_id] = changed.get(issue_id, False) or kind in _MOVES
            cache.timeline_mark = max(cache.timeline_mark, entry_id)
        floor = cache.timeline_mark - margin
        cache.seen_entries = {i for i in cache.seen_entries if i > floor}
        ids = sorted(changed)
        cache.mark_dirty(ids)
        # the issues found stale by the check, which have no new entry
        for chunk in _chunks([i for i in ids if i not in found]):
            for fetched in await session.execute(
                select(*_ISSUE_COLUMNS).where(Issue.id.in_(chunk))
            ):
                found[fetched[0]] = fetched
        for issue_id in ids:
            row = found.get(issue_id)
            old = cache.entries.get(issue_id)
            if row is None or row[1] in _DONE:
                cache.entries.pop(issue_id, None)  # gone, or no longer open
            elif old is None or changed[issue_id]:
                cache.entries[issue_id] = _entry(row)
            else:
                old.status, old.updated_at, old.route, old.component, old.title = (
                    row[1],
                    row[2],
                    row[4],
                    row[5],
                    row[6],
                )
                old.built = None
        moved = [i for i in ids if changed[i] and i in cache.entries]
        if moved:
            await self._read_signals(session, cache, moved, below)
            await self._read_exclusions(session, cache, moved)
        # new signals of every issue (new issues' first ones included)
        self._fold(cache, fresh)
        if changed or fresh:
            cache.version += 1
        cache.signal_mark = max(cache.signal_mark, below - 1)
        floor = cache.signal_mark - margin
        cache.seen_signals = {i for i in cache.seen_signals if i > floor}

    async def _stale(self, session: AsyncSession, cache: OpenIssues) -> list[int]:
        """The issues whose cache entry differs from the committed row: new, changed, or no
        longer open."""
        open_now: set[int] = set()
        stale: list[int] = []
        for issue_id, status, updated_at in await session.execute(
            select(Issue.id, Issue.status, Issue.updated_at)
            .where(Issue.status.not_in(_DONE))
            .order_by(Issue.updated_at.desc(), Issue.id.desc())
            .limit(_MAX_OPEN)
        ):
            open_now.add(issue_id)
            entry = cache.entries.get(issue_id)
            if entry is None or entry.status != status or entry.updated_at != updated_at:
                stale.append(issue_id)
        stale += [i for i in cache.entries if i not in open_now]
        return stale

    async def _read_signals(
        self,
        session: AsyncSession,
        cache: OpenIssues,
        ids: list[int],
        below: int,
    ) -> int:
        """Read the features of issues `ids` from scratch: fold their signals with id below
        `below` into the entries (the new signals of any issue come with
        `_CHANGES`). Returns how many rows were folded in."""
        label = Signal.labels["rule"].as_string()
        columns = (
            Signal.issue_id,
            Signal.route,
            Signal.component,
            Signal.kind,
            label,
            func.min(Signal.occurred_at),
            func.max(Signal.received_at),
        )
        for i in ids:
            entry = cache.entries.get(i)
            if entry is not None:
                entry.routes, entry.components, entry.categories = set(), set(), set()
                entry.first_seen = entry.last_seen = None
                entry.built = None
        count = 0
        for chunk in _chunks(ids):
            folded = list(
                await session.execute(
                    select(*columns)
                    .where(Signal.issue_id.in_(chunk), Signal.id < below)
                    .group_by(Signal.issue_id, Signal.route, Signal.component, Signal.kind, label)
                )
            )
            self._fold(cache, folded)
            count += len(folded)
        return count

    def _fold(self, cache: OpenIssues, rows: Sequence[Any]) -> None:
        """(issue id, route, component, kind, rule, first occurred, last received) rows."""
        if rows:
            for issue_id, route, component, kind, rule, first, last in rows:
                entry = cache.entries.get(issue_id)
                if entry is None:
                    continue
                cache.mark_dirty((issue_id,))
                if route in self.by_name:
                    entry.routes.add(route)
                if component:
                    entry.components.add(component)
                entry.categories.add(correlate.category(kind, {"rule": rule} if rule else None))
                if first is not None:
                    t = first.timestamp()
                    entry.first_seen = t if entry.first_seen is None else min(entry.first_seen, t)
                if last is not None:
                    t = last.timestamp()
                    entry.last_seen = t if entry.last_seen is None else max(entry.last_seen, t)
                entry.built = None

    async def _read_exclusions(
        self, session: AsyncSession, cache: OpenIssues, ids: list[int]
    ) -> None:
        for chunk in _chunks(ids):
            for issue_id, key in await session.execute(
                select(SignalExclusion.issue_id, Signal.dedup_key)
                .join(Signal, Signal.id == SignalExclusion.signal_id)
                .where(SignalExclusion.issue_id.in_(chunk))
            ):
                entry = cache.entries.get(issue_id)
                if entry is not None:
                    entry.excluded_keys.add(key)
                    entry.built = None
                    cache.mark_dirty((issue_id,))

    # --- apply ---------------------------------------------------------------------------

    async def _apply(
        self,
        session: AsyncSession,
        matrix: Matrix,
        priorities: Mapping[str, Mapping[str, str]],
        signal: Signal,
        decision: Decision,
        known: dedup.OpenGroups,
        made: dict[int, Issue],
        premade: dict[int, Issue],
        writes: _Writes,
    ) -> Issue | None:
        target = decision.issue_id
        if decision.action is Action.reopen and target is not None:
            from hypercare.detection.service import reopen_auto_resolved

            await reopen_auto_resolved(
                session=session,
                matrix=matrix,
                issue_id=target,
                why=f"{signal.source} signal: {signal.summary}",
                now=signal.received_at,
            )
        if decision.action in (Action.join_group, Action.reopen):
            issue = await dedup.attach(
                session=session,
                matrix=matrix,
                signal=signal,
                priorities=priorities,
                create=False,
                known=known,
                pending=writes,
            )
            if issue is not None:
                self._link(writes, signal, issue, 1.0, list(decision.reasons))
            return issue
        if decision.action is Action.link and target is not None:
            issue = made.get(target) or await triage.get_issue(session=session, issue_id=target)
            if issue.status in _DONE and issue.id == target:
                made.pop(target, None)  # finished by someone else: see below
            if issue.status not in _DONE:
                _close_stale_group(known, signal.dedup_key)
                dedup.start_group(session, signal, issue, known, writes)
                row = triage.entry_row(
                    issue,
                    actor="hypercare",
                    kind="signal_linked",
                    text=f"{signal.source} signal linked: {signal.summary}"[:1500]
                    + f" — {', '.join(decision.reasons)}",
                    data={
                        "signal_id": signal.id,
                        "score": decision.score,
                        "reasons": list(decision.reasons),
                        "strong": decision.reprioritise,
                    },
                    at=signal.received_at,
                )
                writes.entries.append(row)
                self._link(writes, signal, issue, decision.score, list(decision.reasons))
                return issue
            # finished by someone else since the cache was read: the signals the batch linked
            # to it open one new issue together
            self.open_issues.invalidate()
        elif decision.action is not Action.open:
            return None
        _close_stale_group(known, signal.dedup_key)
        ready = None
        if target is not None and signal.dedup_key not in known:
            # the issue made for it beforehand, as it opens one (else it is deleted, unused)
            ready = premade.pop(target, None)
        issue = await dedup.attach(
            session=session,
            matrix=matrix,
            signal=signal,
            priorities=priorities,
            create=True,
            known=known,
            premade=ready,
            pending=writes,
        )
        if issue is None:
            return None
        if issue.route is None and signal.route:
            issue.route = signal.route
        if issue.component is None and signal.component:
            issue.component = signal.component
        if target is not None:
            made[target] = issue
        self._link(writes, signal, issue, 1.0, ["opened this issue"])
        return issue

    def _note(
        self,
        context: correlate.Context,
        issue_id: int,
        signal: Signal,
        feat: correlate.SignalFeatures,
    ) -> None:
        """The batch's view of issue `issue_id` after `signal` joined (or opened) it; the
        cache is not touched: it only ever holds what was committed."""
        if not self.correlation:
            return
        old = context.issues.get(issue_id)
        at = signal.received_at.timestamp()
        routes = {signal.route} if signal.route in self.by_name else set()
        components = {signal.component} if signal.component else set()
        if old is None:
            if issue_id < _PLACEHOLDER:
                return  # not an open issue of the context (a sender's choice, say)
            made = correlate.IssueFeatures(
                issue_id=issue_id,
                dedup_keys=frozenset(),
                routes=frozenset(routes),
                components=frozenset(components),
                first_seen=feat.occurred_at,
                last_seen=at,
                upstreams=frozenset(u for r in routes if (u := self.upstreams.get(r))),
                categories=frozenset({feat.category}),
                words=correlate.tokens(signal.summary[:300]),
            )
        else:
            routes |= old.routes
            made = replace(
                old,
                routes=frozenset(routes),
                components=old.components | components,
                upstreams=frozenset(u for r in routes if (u := self.upstreams.get(r))),
                categories=old.categories | {feat.category},
                first_seen=min(old.first_seen, feat.occurred_at),
                last_seen=max(old.last_seen, at),
            )
        context.note(made)

    def _link(
        self, writes: _Writes, signal: Signal, issue: Issue, score: float, reasons: list[str]
    ) -> None:
        # the signal was stored a moment ago: it has no link yet (people relink later)
        writes.links.append(
            {
                "signal_id": signal.id,
                "issue_id": issue.id,
                "score": score,
                "reasons": reasons,
                "by": "hypercare",
                "at": signal.received_at,
            }
        )

    # --- priority ------------------------------------------------------------------------

    async def _reprioritise(
        self,
        session: AsyncSession,
        matrix: Matrix,
        work: list[_ImpactIn],
        news: Mapping[int, int] | None = None,
    ) -> None:
        """Raise priorities when the measured impact justifies it; never lower them, and never
        touch a priority a person set. Once per issue for the batch, with its signals of the
        batch that carry strong evidence. `news`: the issues the batch opened, with their user
        reports (nobody set their priority yet: nothing to read for them)."""
        news = news or {}
        ids = [w.issue.id for w in work if w.issue.id not in news]
        chosen, users = await _priority_inputs(session, ids) if ids else (set(), {})
        users.update({i: n for i, n in news.items() if n})
        entries: list[dict[str, Any]] = []  # written together at the end
        for issue, signals in work:
            if issue.id in chosen or issue.status in _DONE:
                continue
            best: tuple[str, list[str]] | None = None
            for signal in signals:
                impact = self._impact(issue, signal, users.get(issue.id, 0))
                level, reasons = suggest_priority(impact, self.detection.impact)
                if reasons and level in matrix.by_name and (best is None or level < best[0]):
                    best = (level, reasons)
            if best is None or best[0] >= issue.priority:
                continue
            level, reasons = best
            at = max(s.received_at for s in signals)
            await triage.update_issue(
                session=session,
                matrix=matrix,
                issue_id=issue.id,
                changes={"priority": level},
                actor="hypercare",
                now=at,
                entries=entries,
            )
            entries.append(
                triage.entry_row(
                    issue,
                    actor="hypercare",
                    kind="auto_priority",
                    text=f"Auto-priority {level}: {', '.join(reasons)}",
                    data={"priority": level, "reasons": reasons},
                    at=at,
                )
            )
        await triage.add_entries(session, entries)

    def _impact(self, issue: Issue, signal: Signal, users: int) -> Impact:
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
            distinct_users=users,
            source_severity=(signal.severity or "").lower() or None,
        )


@dataclass
class _Writes(dedup.Pending):
    """A batch's rows written at its end (`dedup.Pending`), with the signals' links."""

    links: list[dict[str, Any]] = field(default_factory=list)
    signals: dict[int, Any] = field(default_factory=dict)  # `take_decided`
    # new rows not inserted yet (`attach_many`'s `unwritten`): they go in first, as they are
    unwritten: list[tuple[Any, Sequence[Any]]] = field(default_factory=list)

    def take_decided(self, signals: Sequence[tuple[Signal, bool]]) -> None:
        """`_take_decided` for the batch's signals already in the database (those among
        `unwritten` are inserted with their decided columns)."""
        inserting = {id(s) for model, rows in self.unwritten if model is Signal for s in rows}
        _take_decided([s for s in signals if id(s[0]) not in inserting], self.signals)

    async def write(
        self, session: AsyncSession, *first: bulk.Step, last: Sequence[bulk.Step] = ()
    ) -> None:
        """The rows not inserted yet, the signals' decided columns (of the others), then the
        groups and timeline entries, then the links: one `hypercare.store.bulk.write` (one
        statement on PostgreSQL)."""
        new = [
            bulk.Insert(model.__table__, row_values(model, objects, with_id=True))
            for model, objects in self.unwritten
        ]
        decided = bulk.Update(_SIGNALS, list(self.signals.values()))
        links = bulk.Insert(cast(Table, SignalLink.__table__), self.links)
        await super().write(session, *new, *first, decided, last=[links, *last])
        self.signals, self.links, self.unwritten = {}, [], []


_SIGNALS = cast(Table, Signal.__table__)
_ISSUES_BY_ID = bulk.PerDialect(lambda in_list: select(Issue).where(in_list(Issue.id, "ids")))


class _ImpactIn(NamedTuple):
    issue: Issue
    signals: list[Signal]


_ISSUE_COLUMNS = (
    Issue.id,
    Issue.status,
    Issue.updated_at,
    Issue.created_at,
    Issue.route,
    Issue.component,
    Issue.title,
)


def _entry(row: Any) -> _Entry:
    return _Entry(
        status=row[1],
        updated_at=row[2],
        created_at=row[3],
        route=row[4],
        component=row[5],
        title=row[6] or "",
    )


def _take_decided(signals: Sequence[tuple[Signal, bool]], decided: dict[int, Any]) -> None:
    """The columns the attach step sets on the batch's signals (`_SIGNAL_DECIDED`), taken out
    of the unit of work into `decided` (by signal id) so that one UPDATE writes them all at the
    end, with no flush of the signals before; the objects keep the values as if read back."""
    for signal, _ in signals:
        loaded = inspect(signal).dict
        if signal.id is None or any(c not in loaded for c in _SIGNAL_DECIDED):
            continue  # left to the flush
        decided[signal.id] = {"id": signal.id, **{c: loaded[c] for c in _SIGNAL_DECIDED}}
        for column in _SIGNAL_DECIDED:
            set_committed_value(signal, column, loaded[column])


def _build_changes(
    in_list: Callable[[Any, str], Any], seen_entries: bool, seen_signals: bool
) -> CompoundSelect[Any]:
    """What `Correlator._refresh` reads, in one statement (`_CHANGES`: built once per dialect
    and shape, as building it costs more than running it): timeline entries with id above
    ``:floor`` (tag 0: entry id, issue id, entry kind, then the issue's status, updated_at,
    created_at, route, component, title) and signals of an issue with id in (``:after``,
    ``:below``) (tag 1: signal id, issue id, kind, None, occurred_at, received_at, route,
    component, rule label). With `seen_entries` / `seen_signals`, the ids of the margin read
    before (``:seen_entries``, ``:seen_signals``, from `OpenIssues.seen_*`: up to a few
    hundred on PostgreSQL, none on SQLite, whose margin is 0) are left out: not sent and
    skipped again at each refresh."""
    entries = (
        select(
            literal(0),
            TimelineEntry.id,
            Issue.id,
            TimelineEntry.kind,
            *_ISSUE_COLUMNS[1:],  # status, updated_at, created_at, route, component, title
        )
        .join(Issue, Issue.id == TimelineEntry.issue_id)
        .where(TimelineEntry.id > bindparam("floor"))
    )
    if seen_entries:
        entries = entries.where(~in_list(TimelineEntry.id, "seen_entries"))
    signals = select(
        literal(1),
        Signal.id,
        Signal.issue_id,
        Signal.kind,
        null(),
        Signal.occurred_at,
        Signal.received_at,
        Signal.route,
        Signal.component,
        Signal.labels["rule"].as_string(),
    ).where(
        Signal.id > bindparam("after"),
        Signal.id < bindparam("below"),
        Signal.issue_id.is_not(None),
    )
    if seen_signals:
        signals = signals.where(~in_list(Signal.id, "seen_signals"))
    return union_all(entries, signals)


_CHANGES = bulk.PerDialect(_build_changes)


def _margin(session: AsyncSession) -> int:
    """How far back of the marks a refresh reads. SQLite has one writer at a time, which takes
    ids and commits before the next one starts: no row commits late, nothing to read again."""
    return 0 if session.get_bind().dialect.name == "sqlite" else _ID_MARGIN


async def _drop_unused(session: AsyncSession, issues: list[Issue], writes: _Writes) -> None:
    """Issues made beforehand for signals that joined an issue after all (which the
    decisions rule out: kept for safety), with their "created" entries."""
    ids = {i.id for i in issues}
    writes.entries = [row for row in writes.entries if row["issue_id"] not in ids]
    for issue in issues:
        await session.delete(issue)


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def _text_of(signal: Signal) -> str:
    labels = " ".join(str(v) for v in (signal.labels or {}).values())
    return f"{signal.summary} {signal.body[:2000]} {labels[:500]}"


def _close_stale_group(known: dedup.OpenGroups, key: str) -> None:
    """The key's open group belongs to a finished issue: it takes no more signals."""
    found = known.get(key)
    if found is not None and found[1].status in _DONE:
        found[0].open = False
        del known[key]


async def _priority_inputs(
    session: AsyncSession, ids: list[int]
) -> tuple[set[int], dict[int, int]]:
    """For `_reprioritise`, in one query per chunk of `ids`: the issues whose priority a person
    (not automation) set, and per issue how many people reported it (distinct user refs, or
    reports without one)."""
    chosen: set[int] = set()
    users: dict[int, int] = {}
    for chunk in _chunks(ids):
        rows: Sequence[Any] = (await session.execute(_PEOPLE(session), {"ids": chunk})).all()
        for issue_id, person, distinct, reports in rows:
            if issue_id is None:
                continue
            if person:
                chosen.add(issue_id)
            else:
                users[issue_id] = max(distinct or 0, reports or 0)
    return chosen, users


_PEOPLE = bulk.PerDialect(
    lambda in_list: union_all(
        select(TimelineEntry.issue_id, literal(1), literal(0), literal(0))
        .where(
            in_list(TimelineEntry.issue_id, "ids"),
            TimelineEntry.actor.not_in(AUTOMATION),
            TimelineEntry.kind == "priority",
        )
        .distinct(),
        select(
            Signal.issue_id,
            literal(0),
            func.count(func.distinct(Signal.user_ref)),
            func.count(),
        )
        .where(in_list(Signal.issue_id, "ids"), Signal.kind == "user")
        .group_by(Signal.issue_id),
    )
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

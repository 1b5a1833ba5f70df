"""The attach step: which issue a stored signal belongs to.

The dedup-only step, used when `AppState.attach` is None; `api.app.build_state` installs
detection's scoring `Correlator` (`detection/attach.py`), which keeps this rule first. The
rule is dedup by key: the same key while its issue is open updates that issue (counter,
last seen, a timeline entry); a ``resolved`` signal marks the group resolved and says so on
the timeline; a new firing key opens an issue in ``new`` with a suggested priority.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.feedback import priorities as priority_rules
from hypercare.feedback.models import Signal, SignalGroup
from hypercare.store import bulk
from hypercare.triage import service as triage
from hypercare.triage.models import Issue, IssueCreate, TimelineEntry
from hypercare.triage.rules import DONE, Matrix

# who opens and updates issues from signals: shown as the reporter of the issues it opens
ACTOR = "Hypercare detection"
_DONE = tuple(s.value for s in DONE)

# dedup key -> its open group and that group's issue, loaded once for a whole delivery
OpenGroups = dict[str, tuple[SignalGroup, Issue]]


async def open_groups(*, session: AsyncSession, keys: Iterable[str]) -> OpenGroups:
    """The open groups (and their issues) of `keys` in one query, for `attach(known=)`."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await session.execute(_OPEN_GROUPS(session), {"keys": wanted})
    return {group.dedup_key: (group, issue) for group, issue in rows}


# built once: a statement made anew at every batch costs more to build than to run
_OPEN_GROUPS = bulk.PerDialect(
    lambda in_list: (
        select(SignalGroup, Issue)
        .join(Issue, Issue.id == SignalGroup.issue_id)
        .where(
            in_list(SignalGroup.dedup_key, "keys"),
            SignalGroup.open.is_(True),
        )
        .order_by(SignalGroup.id)
    )
)


@dataclass
class Pending:
    """What an attach step working a batch at a time writes at the end of the batch, one
    statement per table, instead of as ORM objects in the session: timeline entries as rows
    (`triage.entry_row`), and the dedup groups the batch opens, kept as transient objects so
    that later signals of the batch update them in place. `write` after the batch's issues
    and signals are flushed."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    groups: list[SignalGroup] = field(default_factory=list)

    async def write(
        self, session: AsyncSession, *first: bulk.Step, last: Sequence[bulk.Step] = ()
    ) -> None:
        """Write the batch's rows (after `first` and before `last`, the steps of a subclass)
        in one `hypercare.store.bulk.write`."""
        await bulk.write(session, [*first, *self.steps(), *last])
        self.entries, self.groups = [], []

    def steps(self) -> list[bulk.Step]:
        groups = [
            {
                "dedup_key": g.dedup_key,
                "issue_id": g.issue_id,
                "open": g.open,
                "count": g.count,
                "status": g.status,
                "first_seen": g.first_seen,
                "last_seen": g.last_seen,
            }
            for g in self.groups
        ]
        return [
            bulk.Insert(cast(Table, SignalGroup.__table__), groups),
            bulk.Insert(cast(Table, TimelineEntry.__table__), self.entries),
        ]


class AttachStep(Protocol):
    """The shape of an attach step; `attach` below is the dedup-only one, and the detection
    package provides a correlating one that `hypercare up` uses."""

    async def __call__(
        self,
        *,
        session: AsyncSession,
        matrix: Matrix,
        signal: Signal,
        priorities: Mapping[str, Mapping[str, str]],
        create: bool = True,
        known: OpenGroups | None = None,
    ) -> Issue | None: ...


@runtime_checkable
class BatchAttachStep(AttachStep, Protocol):
    """An attach step that takes a whole batch (the signals of a group commit) at once, with
    the same outcome as attaching them one after the other; `create` per signal.
    `unwritten`: new objects (by model, parents first) that have their ids but are not in the
    database yet, the signals among them; the step inserts them with its own rows, with the
    values they have then."""

    async def attach_many(
        self,
        *,
        session: AsyncSession,
        matrix: Matrix,
        signals: Sequence[tuple[Signal, bool]],
        priorities: Mapping[str, Mapping[str, str]],
        known: OpenGroups | None = None,
        unwritten: Sequence[tuple[Any, Sequence[Any]]] = (),
    ) -> list[Issue | None]: ...


async def attach(
    *,
    session: AsyncSession,
    matrix: Matrix,
    signal: Signal,
    priorities: Mapping[str, Mapping[str, str]],
    create: bool = True,
    known: OpenGroups | None = None,
    premade: Issue | None = None,
    pending: Pending | None = None,
) -> Issue | None:
    """Link `signal` (already flushed) to an issue, setting ``signal.issue_id``, and return
    it; None when the signal stands alone (a resolve for nothing open, or `create` is
    False). `known`, from `open_groups`, saves a query per signal and is kept up to date.
    `premade`: the issue to open, made beforehand with `new_issue` (with others, in one
    insert), used if the signal opens one. `pending`: the timeline entries and new groups
    go there instead of into the session."""
    if signal.issue_id is not None:
        linked = await triage.get_issue(session=session, issue_id=signal.issue_id)
        _note(session, linked, signal, kind="signal", pending=pending)
        return linked
    if known is None:
        known = await open_groups(session=session, keys=[signal.dedup_key])
    found = known.get(signal.dedup_key)
    if found is not None:
        group, current = found
        if current.status not in _DONE:
            return _update_group(session, group, current, signal, pending)
        group.open = False
        del known[signal.dedup_key]
    if signal.status == "resolved" or not create:
        return None
    if premade is not None:
        issue = premade
    else:
        issue = await triage.create_issue(
            session=session,
            matrix=matrix,
            data=issue_data(signal, matrix, priorities),
            actor=ACTOR,
            detected_at=signal.received_at,
            now=signal.received_at,
        )
    start_group(session, signal, issue, known, pending)
    _note(session, issue, signal, kind="signal", pending=pending)
    return issue


def new_issue(
    signal: Signal, matrix: Matrix, priorities: Mapping[str, Mapping[str, str]]
) -> triage.NewIssue:
    """The issue a new firing signal opens, for `triage.create_issues` (then `attach` with
    it as `premade`)."""
    return triage.NewIssue(
        issue_data(signal, matrix, priorities), ACTOR, signal.received_at, signal.received_at
    )


def issue_data(
    signal: Signal, matrix: Matrix, priorities: Mapping[str, Mapping[str, str]]
) -> IssueCreate:
    """What the issue a new firing signal opens holds: its summary as the title, a suggested
    priority, its source and severity as labels."""
    priority = priority_rules.suggest(
        priorities, matrix, source=signal.source, severity=signal.severity
    )
    labels = [f"source:{signal.source}"]
    if signal.severity:
        labels.append(f"severity:{signal.severity}"[:60])
    category = (signal.labels or {}).get("category")
    if isinstance(category, str) and category:
        labels.append(category[:60])  # e.g. "security" from an auth-failure rule
    return IssueCreate(
        title=signal.summary[:300] or f"{signal.source} signal",
        description=signal.body[:20_000],
        priority=priority,
        component=signal.component,
        route=signal.route,
        labels=labels,
        impact_started_at=signal.occurred_at,
    )


def start_group(
    session: AsyncSession,
    signal: Signal,
    issue: Issue,
    known: OpenGroups | None = None,
    pending: Pending | None = None,
) -> SignalGroup:
    """Put `signal` on `issue` and open the dedup group that later signals of its key join
    (added to the session, or to `pending`)."""
    group = SignalGroup(
        dedup_key=signal.dedup_key,
        issue_id=issue.id,
        open=True,
        count=1,
        status=signal.status,
        first_seen=signal.received_at,
        last_seen=signal.received_at,
    )
    if pending is not None:
        pending.groups.append(group)
    else:
        session.add(group)
    if known is not None:
        known[signal.dedup_key] = (group, issue)
    signal.issue_id = issue.id
    return group


def _update_group(
    session: AsyncSession,
    group: SignalGroup,
    issue: Issue,
    signal: Signal,
    pending: Pending | None = None,
) -> Issue:
    group.count += 1
    group.last_seen = signal.received_at
    signal.issue_id = issue.id
    if signal.status == "resolved":
        group.status = "resolved"
        _note(session, issue, signal, kind="signal_resolved", count=group.count, pending=pending)
    else:
        if signal.status == "firing":
            group.status = "firing"
        _note(session, issue, signal, kind="signal", count=group.count, pending=pending)
    return issue


def _note(
    session: AsyncSession,
    issue: Issue,
    signal: Signal,
    *,
    kind: str,
    count: int = 1,
    pending: Pending | None = None,
) -> None:
    verb = "resolved" if kind == "signal_resolved" else "received"
    text = f"{signal.source} signal {verb}: {signal.summary}"
    if count > 1:
        text += f" (seen {count} times)"
    row = triage.entry_row(
        issue,
        actor=ACTOR,
        kind=kind,
        text=text[:2000],
        data={
            "signal_id": signal.id,
            "source": signal.source,
            "dedup_key": signal.dedup_key,
            "status": signal.status,
            "count": count,
        },
        at=signal.received_at,
    )
    if pending is not None:
        pending.entries.append(row)
    else:
        session.add(TimelineEntry(**row))

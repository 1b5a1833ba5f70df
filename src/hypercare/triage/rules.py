"""Pure triage rules: lifecycle transitions, milestones, SLA math, escalation, MTTx.

No I/O here: every function takes plain values and returns plain values, so each rule is
tested exhaustively without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from hypercare.errors import InvalidInput, InvalidTransition
from hypercare.triage.config import PriorityLevel, TriageConfig


class Status(StrEnum):
    new = "new"
    triaged = "triaged"
    investigating = "investigating"
    mitigated = "mitigated"
    resolved = "resolved"
    verified = "verified"
    reopened = "reopened"
    closed = "closed"


class SlaState(StrEnum):
    ok = "ok"
    at_risk = "at_risk"
    breached = "breached"


S = Status
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    S.new: frozenset({S.triaged, S.investigating, S.closed}),
    S.triaged: frozenset({S.investigating, S.mitigated, S.resolved, S.closed}),
    S.investigating: frozenset({S.mitigated, S.resolved, S.closed}),
    S.mitigated: frozenset({S.investigating, S.resolved, S.closed}),
    S.resolved: frozenset({S.verified, S.reopened, S.closed}),
    S.verified: frozenset({S.reopened, S.closed}),
    S.reopened: frozenset({S.triaged, S.investigating, S.mitigated, S.resolved, S.closed}),
    # a closed issue (won't fix, duplicate) can be brought back if the call was wrong
    S.closed: frozenset({S.reopened}),
}

# The SLA clock stops in these states; they are not "open".
DONE = frozenset({S.resolved, S.verified, S.closed})
OPEN = frozenset(set(Status) - DONE)


def allowed_transitions(current: Status) -> list[Status]:
    return sorted(TRANSITIONS[current], key=list(Status).index)


def check_transition(current: Status, to: Status, reason: str | None) -> None:
    """Raise `InvalidTransition` (409) listing the allowed moves, or `InvalidInput` (422)."""
    if to not in TRANSITIONS[current]:
        allowed = allowed_transitions(current)
        raise InvalidTransition(
            f"cannot move an issue from {current.value!r} to {to.value!r}; "
            f"allowed from {current.value!r}: {', '.join(s.value for s in allowed) or 'none'}",
            details={"from": current.value, "to": to.value, "allowed": [s.value for s in allowed]},
        )
    if to in (S.closed, S.reopened) and not (reason and reason.strip()):
        raise InvalidInput(
            f"moving to {to.value!r} needs a 'reason' (e.g. \"won't fix: ...\" or "
            '"duplicate of #12")',
            details={"field": "reason"},
        )


@dataclass(frozen=True, slots=True)
class Milestones:
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    verified_at: datetime | None = None
    closed_at: datetime | None = None


def stamp_milestones(m: Milestones, to: Status, now: datetime) -> Milestones:
    """The milestones after moving to `to` at `now`.

    Acknowledgement is the first move out of `new`; a reopen clears resolution and
    verification so MTTR measures the final fix, while the timeline keeps the history.
    """
    ack = m.acknowledged_at or now
    if to in (S.triaged, S.investigating, S.mitigated, S.resolved, S.verified):
        m = _replace(m, acknowledged_at=ack)
    if to is S.mitigated:
        return _replace(m, mitigated_at=m.mitigated_at or now)
    if to is S.resolved:
        return _replace(m, resolved_at=now, closed_at=None)
    if to is S.verified:
        return _replace(m, verified_at=now, resolved_at=m.resolved_at or now)
    if to is S.reopened:
        return _replace(m, resolved_at=None, verified_at=None, closed_at=None)
    if to is S.closed:
        return _replace(m, closed_at=now)
    return m


def _replace(m: Milestones, **changes: datetime | None) -> Milestones:
    fields = {
        "acknowledged_at": m.acknowledged_at,
        "mitigated_at": m.mitigated_at,
        "resolved_at": m.resolved_at,
        "verified_at": m.verified_at,
        "closed_at": m.closed_at,
    }
    fields.update(changes)
    return Milestones(**fields)


class Matrix:
    """The priority matrix from configuration: levels by name, in order of urgency."""

    def __init__(self, config: TriageConfig) -> None:
        self.levels: tuple[PriorityLevel, ...] = tuple(config.matrix)
        self.by_name = {lv.level: lv for lv in self.levels}
        self.at_risk_fraction = config.at_risk_fraction
        self.default_priority = config.default_priority

    def level(self, priority: str) -> PriorityLevel:
        try:
            return self.by_name[priority]
        except KeyError:
            valid = ", ".join(self.by_name)
            raise InvalidInput(
                f"unknown priority {priority!r}; the matrix defines {valid}",
                details={"field": "priority", "valid": list(self.by_name)},
            ) from None


def due_at(opened_at: datetime, level: PriorityLevel) -> datetime | None:
    """When the issue must be resolved; None for levels without an SLA (post-hypercare)."""
    return None if level.target is None else opened_at + level.target


def sla_state(
    *,
    now: datetime,
    due: datetime | None,
    target: timedelta | None,
    at_risk_fraction: float,
    stopped_at: datetime | None = None,
) -> SlaState:
    """`breached` once due has passed, `at_risk` when less than the fraction of the target
    remains, else `ok`. `stopped_at` (resolution or closure) freezes the clock."""
    if due is None or target is None:
        return SlaState.ok
    at = stopped_at or now
    remaining = due - at
    if remaining <= timedelta(0):
        return SlaState.breached
    if remaining < target * at_risk_fraction:
        return SlaState.at_risk
    return SlaState.ok


def escalation_level(state: SlaState, path: Sequence[str]) -> int:
    """Which step of the escalation path is engaged: the first on open, the next when the
    SLA is at risk, the one after when it is breached (never past the last step)."""
    step = {SlaState.ok: 0, SlaState.at_risk: 1, SlaState.breached: 2}[state]
    return max(0, min(step, len(path) - 1))


def duration_seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


@dataclass(frozen=True, slots=True)
class Mttx:
    """Time to detect, acknowledge and resolve one issue, in seconds (None until known)."""

    mttd: float | None
    mtta: float | None
    mttr: float | None


class Timed(Protocol):
    """What `mttx_of` reads: an issue's row, or any summary of one."""

    @property
    def impact_started_at(self) -> datetime | None: ...
    @property
    def detected_at(self) -> datetime | None: ...
    @property
    def acknowledged_at(self) -> datetime | None: ...
    @property
    def resolved_at(self) -> datetime | None: ...


def mttx_of(issue: Timed) -> Mttx:
    """`mttx` of an issue's own timestamps."""
    return mttx(
        impact_started_at=issue.impact_started_at,
        detected_at=issue.detected_at,
        acknowledged_at=issue.acknowledged_at,
        resolved_at=issue.resolved_at,
    )


def mttx(
    *,
    impact_started_at: datetime | None,
    detected_at: datetime | None,
    acknowledged_at: datetime | None,
    resolved_at: datetime | None,
) -> Mttx:
    """MTTD = detected - impact started; MTTA = acknowledged - detected;
    MTTR = resolved - impact started (or detected when the impact start is unknown)."""
    return Mttx(
        mttd=duration_seconds(impact_started_at, detected_at),
        mtta=duration_seconds(detected_at, acknowledged_at),
        mttr=duration_seconds(impact_started_at or detected_at, resolved_at),
    )

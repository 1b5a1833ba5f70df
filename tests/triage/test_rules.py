from datetime import UTC, datetime, timedelta

import pytest

from hypercare.errors import InvalidInput, InvalidTransition
from hypercare.triage import rules
from hypercare.triage.config import TriageConfig
from hypercare.triage.rules import Matrix, Milestones, SlaState, Status

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ALL = list(Status)

EXPECTED = {
    Status.new: {"triaged", "investigating", "closed"},
    Status.triaged: {"investigating", "mitigated", "resolved", "closed"},
    Status.investigating: {"mitigated", "resolved", "closed"},
    Status.mitigated: {"investigating", "resolved", "closed"},
    Status.resolved: {"verified", "reopened", "closed"},
    Status.verified: {"reopened", "closed"},
    Status.reopened: {"triaged", "investigating", "mitigated", "resolved", "closed"},
    Status.closed: {"reopened"},
}


@pytest.mark.parametrize("current", ALL)
@pytest.mark.parametrize("to", ALL)
def test_every_transition_is_allowed_or_rejected_with_the_allowed_list(
    current: Status, to: Status
) -> None:
    reason = "because"
    if to.value in EXPECTED[current]:
        rules.check_transition(current, to, reason)
        return
    with pytest.raises(InvalidTransition) as err:
        rules.check_transition(current, to, reason)
    assert err.value.details["allowed"] == [s.value for s in ALL if s.value in EXPECTED[current]]
    assert current.value in err.value.message and to.value in err.value.message


@pytest.mark.parametrize("to", [Status.closed, Status.reopened])
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_closing_and_reopening_need_a_reason(to: Status, reason: str | None) -> None:
    with pytest.raises(InvalidInput, match="reason"):
        rules.check_transition(Status.resolved, to, reason)


def test_acknowledgement_is_stamped_once_by_the_first_move_out_of_new() -> None:
    m = rules.stamp_milestones(Milestones(), Status.triaged, T0)
    assert m.acknowledged_at == T0
    later = rules.stamp_milestones(m, Status.investigating, T0 + timedelta(minutes=5))
    assert later.acknowledged_at == T0


@pytest.mark.parametrize(
    ("to", "field"),
    [
        (Status.mitigated, "mitigated_at"),
        (Status.resolved, "resolved_at"),
        (Status.verified, "verified_at"),
        (Status.closed, "closed_at"),
    ],
)
def test_each_transition_stamps_its_milestone(to: Status, field: str) -> None:
    m = rules.stamp_milestones(Milestones(), to, T0)
    assert getattr(m, field) == T0


def test_reopen_clears_resolution_and_verification_but_keeps_ack_and_mitigation() -> None:
    m = Milestones(
        acknowledged_at=T0,
        mitigated_at=T0 + timedelta(minutes=1),
        resolved_at=T0 + timedelta(minutes=2),
        verified_at=T0 + timedelta(minutes=3),
    )
    r = rules.stamp_milestones(m, Status.reopened, T0 + timedelta(minutes=4))
    assert (r.resolved_at, r.verified_at) == (None, None)
    assert (r.acknowledged_at, r.mitigated_at) == (m.acknowledged_at, m.mitigated_at)


def test_mitigation_keeps_the_first_time() -> None:
    m = rules.stamp_milestones(Milestones(mitigated_at=T0), Status.mitigated, T0 + timedelta(1))
    assert m.mitigated_at == T0


def test_default_matrix_targets() -> None:
    matrix = Matrix(TriageConfig())
    assert [lv.level for lv in matrix.levels] == ["P1", "P2", "P3", "P4"]
    assert rules.due_at(T0, matrix.level("P1")) == T0 + timedelta(hours=1)
    assert rules.due_at(T0, matrix.level("P2")) == T0 + timedelta(hours=4)
    assert rules.due_at(T0, matrix.level("P3")) == T0 + timedelta(hours=24)
    assert rules.due_at(T0, matrix.level("P4")) is None
    with pytest.raises(InvalidInput, match="P1, P2, P3, P4"):
        matrix.level("P7")


HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (timedelta(0), SlaState.ok),
        (timedelta(minutes=45), SlaState.ok),  # exactly 25 % left: not yet at risk
        (timedelta(minutes=45, seconds=1), SlaState.at_risk),
        (timedelta(minutes=59, seconds=59), SlaState.at_risk),
        (HOUR, SlaState.breached),  # due now: breached
        (HOUR * 5, SlaState.breached),
    ],
)
def test_sla_state_boundaries(elapsed: timedelta, expected: SlaState) -> None:
    state = rules.sla_state(now=T0 + elapsed, due=T0 + HOUR, target=HOUR, at_risk_fraction=0.25)
    assert state is expected


def test_sla_clock_stops_at_resolution() -> None:
    state = rules.sla_state(
        now=T0 + HOUR * 3,
        due=T0 + HOUR,
        target=HOUR,
        at_risk_fraction=0.25,
        stopped_at=T0 + timedelta(minutes=10),
    )
    assert state is SlaState.ok


def test_no_target_never_breaches() -> None:
    state = rules.sla_state(now=T0 + HOUR * 1000, due=None, target=None, at_risk_fraction=0.25)
    assert state is SlaState.ok


def test_escalation_moves_along_the_path_and_stops_at_its_end() -> None:
    path = ["leads", "execs", "on-call"]
    assert [rules.escalation_level(s, path) for s in SlaState] == [0, 1, 2]
    assert rules.escalation_level(SlaState.breached, ["backlog"]) == 0
    assert rules.escalation_level(SlaState.breached, []) == 0


def test_mttx_from_milestones() -> None:
    t = rules.mttx(
        impact_started_at=T0,
        detected_at=T0 + timedelta(minutes=2),
        acknowledged_at=T0 + timedelta(minutes=5),
        resolved_at=T0 + timedelta(minutes=40),
    )
    assert (t.mttd, t.mtta, t.mttr) == (120.0, 180.0, 2400.0)
    unknown = rules.mttx(
        impact_started_at=None, detected_at=T0, acknowledged_at=None, resolved_at=T0 + HOUR
    )
    assert (unknown.mttd, unknown.mtta, unknown.mttr) == (None, None, 3600.0)

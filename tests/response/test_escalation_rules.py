"""next_steps: waits between steps, repeats, SLA advance, acknowledgement."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypercare.response.config import PolicyConfig
from hypercare.response.rules import EscalationState, next_steps, policies_for, quiet_until

T0 = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)
POLICY = PolicyConfig.model_validate(
    {
        "name": "p1",
        "repeat": 2,
        "steps": [
            {"notify": ["primary"], "wait": "5m"},
            {"notify": ["lead", "hook"], "wait": "10m"},
        ],
    }
)


def test_first_step_is_due_at_the_start_and_the_next_after_its_wait() -> None:
    plan = next_steps(POLICY, EscalationState(started_at=T0), T0)
    assert [(s.index, s.round, s.number, s.notify) for s in plan.due] == [(0, 1, 1, ("primary",))]
    assert plan.next_at == T0 + timedelta(minutes=5)
    # one step ran at T0; at 4m59 nothing is due
    state = EscalationState(started_at=T0, done=1, last_at=T0)
    early = next_steps(POLICY, state, T0 + timedelta(minutes=4, seconds=59))
    assert early.due == () and early.next_at == T0 + timedelta(minutes=5)
    on_time = next_steps(POLICY, state, T0 + timedelta(minutes=5))
    assert [s.notify for s in on_time.due] == [("lead", "hook")]
    assert on_time.due[0].due_at == T0 + timedelta(minutes=5)


def test_waits_count_from_the_previous_page_so_a_late_pass_fires_one_step() -> None:
    state = EscalationState(started_at=T0, done=1, last_at=T0)
    late = next_steps(POLICY, state, T0 + timedelta(hours=3))
    assert len(late.due) == 1 and late.due[0].due_at == T0 + timedelta(minutes=5)
    assert late.next_at == T0 + timedelta(hours=3, minutes=10)


def test_repeats_then_finishes() -> None:
    state = EscalationState(started_at=T0, done=3, last_at=T0)
    last = next_steps(POLICY, state, T0 + timedelta(minutes=10))
    assert [(s.round, s.number) for s in last.due] == [(2, 2)]
    # the last step's wait still runs before the policy counts as finished
    assert last.next_at == T0 + timedelta(minutes=20)
    done = next_steps(POLICY, EscalationState(started_at=T0, done=4, last_at=T0), T0)
    assert done.finished


def test_sla_advance_makes_the_next_step_due_now() -> None:
    state = EscalationState(started_at=T0, done=1, last_at=T0, advance_to=2)
    now = T0 + timedelta(minutes=1)
    plan = next_steps(POLICY, state, now)
    assert [s.number for s in plan.due] == [2]
    assert plan.next_at == now + timedelta(minutes=10)


def test_acknowledgement_stops_everything() -> None:
    state = EscalationState(started_at=T0, done=1, last_at=T0, acknowledged=True)
    assert next_steps(POLICY, state, T0 + timedelta(hours=1)).finished


def test_steps_without_wait_run_together() -> None:
    policy = PolicyConfig.model_validate(
        {"name": "x", "steps": [{"notify": ["a"], "wait": "0s"}, {"notify": ["b"], "wait": "1m"}]}
    )
    plan = next_steps(policy, EscalationState(started_at=T0), T0)
    assert [s.notify for s in plan.due] == [("a",), ("b",)]
    assert plan.next_at == T0 + timedelta(minutes=1)  # b's wait, then the run is over


def test_matrix_path_names_pick_policies() -> None:
    policies = [
        PolicyConfig.model_validate({"name": "oncall", "levels": ["24/7 on-call engineering"]}),
        PolicyConfig.model_validate({"name": "team", "levels": ["P3"]}),
    ]
    path = ["all hypercare leads", "executive team", "24/7 on-call engineering"]
    assert policies_for(policies, "P1", path) == ["oncall"]
    assert policies_for(policies, "P3", ["assigned engineering team"]) == ["team"]
    assert policies_for(policies, "P4", ["backlog"]) == []


def test_quiet_hours_past_midnight_end_in_the_persons_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    quiet = (time(22), time(7))
    # 23:30 Paris on the night the clocks go forward (2026-03-29): ends 07:00 CEST = 05:00Z
    now = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)
    assert quiet_until(*quiet, paris, now) == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    # 03:00 Paris: the same night, same end
    assert quiet_until(*quiet, paris, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == datetime(
        2026, 3, 29, 5, 0, tzinfo=UTC
    )
    # 12:00 Paris: not quiet
    assert quiet_until(*quiet, paris, datetime(2026, 3, 29, 10, 0, tzinfo=UTC)) is None
    # a daytime window
    day = quiet_until(time(9), time(17), paris, datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    assert day == datetime(2026, 1, 5, 16, 0, tzinfo=UTC)

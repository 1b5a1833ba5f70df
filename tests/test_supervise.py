"""The restart policy of `hypercare up`'s supervisor: plain functions over plain data."""

from __future__ import annotations

from hypercare.supervise import ChildState, RestartPolicy, describe_exit, restart_delay

POLICY = RestartPolicy(first=0.5, most=30.0, healthy_after=60.0)


def test_delay_doubles_while_crashing_and_stops_at_the_most() -> None:
    delays = []
    previous = 0.0
    for _ in range(10):
        previous = restart_delay(previous, ran_for=1.0, policy=POLICY)
        delays.append(previous)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_delay_starts_over_after_a_healthy_run() -> None:
    assert restart_delay(16.0, ran_for=59.9, policy=POLICY) == 30.0
    assert restart_delay(16.0, ran_for=60.0, policy=POLICY) == 0.5


def test_exit_is_described_by_code_or_signal() -> None:
    assert describe_exit(-9) == "killed by signal SIGKILL (9)"
    assert describe_exit(-15) == "killed by signal SIGTERM (15)"
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(None) == "ended without an exit status"
    assert describe_exit(-200) == "killed by signal 200"


def test_child_state_schedules_each_restart_and_logs_why() -> None:
    child = ChildState("console")
    child.started(now=100.0)
    assert not child.due(now=100.0)
    line = child.died(-9, now=110.0, policy=POLICY)
    assert line == "console killed by signal SIGKILL (9) after 10.0s; restart 1 in 0.5s"
    assert not child.due(now=110.4)
    assert child.due(now=110.5)
    child.started(now=110.5)
    assert child.restart_at is None
    line = child.died(1, now=111.0, policy=POLICY)
    assert line == "console exited with code 1 after 0.5s; restart 2 in 1.0s"
    assert child.due(now=112.0) and child.restarts == 2

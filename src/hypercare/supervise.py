"""How `hypercare up` looks after its children (the console and the gateway workers): when to
restart one that died, and how to say why it died. Pure: no processes, no clocks of its own.

A child that dies is restarted after a delay that starts at `RestartPolicy.first` and doubles
on every further death, up to `RestartPolicy.most`; a child that ran for `healthy_after`
seconds before dying starts again from `first` (it was not crash-looping)::

    policy = RestartPolicy()
    child = ChildState("console")
    child.died(exit_code=-9, now=100.0, policy=policy)  # -> restart at 100.5
    child.started(now=100.6)
"""

from __future__ import annotations

import signal
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    first: float = 0.5
    most: float = 30.0
    healthy_after: float = 60.0


def restart_delay(previous: float, ran_for: float, policy: RestartPolicy) -> float:
    """The wait before restarting a child that just died after running `ran_for` seconds,
    when the wait before its previous restart was `previous` (0: never restarted)."""
    if previous <= 0 or ran_for >= policy.healthy_after:
        return policy.first
    return min(policy.most, previous * 2)


def describe_exit(exit_code: int | None) -> str:
    """``-9`` -> "killed by signal SIGKILL (9)"; ``3`` -> "exited with code 3"."""
    if exit_code is None:
        return "ended without an exit status"
    if exit_code < 0:
        try:
            return f"killed by signal {signal.Signals(-exit_code).name} ({-exit_code})"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


@dataclass(slots=True)
class ChildState:
    """Restart bookkeeping of one child: when it started, when it may start again."""

    name: str
    started_at: float = 0.0
    delay: float = 0.0  # the wait before the latest restart (0: none yet)
    restart_at: float | None = None  # set while the child is dead and waiting
    restarts: int = 0

    def started(self, now: float) -> None:
        self.started_at = now
        self.restart_at = None

    def died(self, exit_code: int | None, now: float, policy: RestartPolicy) -> str:
        """Schedule the restart; returns the log line saying why and when."""
        self.delay = restart_delay(self.delay, now - self.started_at, policy)
        self.restart_at = now + self.delay
        self.restarts += 1
        return (
            f"{self.name} {describe_exit(exit_code)} after {now - self.started_at:.1f}s; "
            f"restart {self.restarts} in {self.delay:.1f}s"
        )

    def due(self, now: float) -> bool:
        return self.restart_at is not None and now >= self.restart_at

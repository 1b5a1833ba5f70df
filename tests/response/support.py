"""Helpers shared by the response tests."""

from __future__ import annotations

from hypercare.api.state import AppState
from hypercare.response import jobs


async def turn(state: AppState) -> None:
    """One pass of the response loop (outbox, escalation, dispatch), then its sends settled."""
    rt = jobs.runtime(state)
    await jobs.step(state, rt)
    await jobs.settle(state, rt)

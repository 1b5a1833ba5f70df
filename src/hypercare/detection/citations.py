"""Waiting for the call log before reading the calls a report cites.

A gateway worker ships its call records every quarter second or so, later under load. A
ticket that cites the request id of a call that failed a moment ago can reach the console
before that call does; looked up at once, the id is not found, the ticket has nothing specific
and opens an issue of its own. That is what made the payments acceptance test link a ticket
to a new issue instead of the payments issue on a busy machine (issue #13 item 5).

`CallLogClock` follows the newest call time the console has stored. Before a delivery that
cites ids is stored, the intake waits — at most `detection.cited_call_wait` — until the call
log holds calls from the moment the delivery arrived: the cited calls happened before it,
so they are stored then. Without traffic (nothing stored for `IDLE_SECONDS`) nothing is in
flight and nothing is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from hypercare.detection.correlate import ids_in_text
from hypercare.feedback.drafts import SignalDraft
from hypercare.gateway.records import CallRecord

IDLE_SECONDS = 10.0


class CallLogClock:
    """The newest call time in the call log, fed by the telemetry intake (a record observer)."""

    def __init__(self) -> None:
        self.latest = 0.0  # Unix seconds of the newest stored call
        self.observed_at = 0.0  # when the last batch was stored (Unix seconds)
        self.waits = 0
        self.timeouts = 0
        self._moved = asyncio.Event()

    def observe(self, records: Sequence[CallRecord]) -> None:
        if not records:
            return
        newest = max(r.time for r in records)
        self.observed_at = time.time()
        if newest > self.latest:
            self.latest = newest
            self._moved.set()

    async def wait_past(self, moment: float, timeout: float) -> bool:
        """Wait until the call log holds calls from `moment` on, or until `timeout` seconds
        passed, or at once when no calls flow. True when caught up (or idle)."""
        if self.latest >= moment or time.time() - self.observed_at > IDLE_SECONDS:
            return True
        self.waits += 1
        deadline = time.monotonic() + timeout
        while self.latest < moment:
            left = deadline - time.monotonic()
            if left <= 0:
                self.timeouts += 1
                return False
            self._moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), timeout=left)
        return True


def cites_calls(drafts: Sequence[SignalDraft]) -> bool:
    """Does any draft cite a call (request ids, a trace id, or an id in its text)?"""
    return any(
        d.request_ids or d.trace_id or ids_in_text(f"{d.summary} {d.body[:2000]}") for d in drafts
    )

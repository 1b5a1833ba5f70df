"""What one integration module provides, and the pieces its test event is built from.

Each module of this package describes its source once, as an `Integration`: the type
string used in the config file and the API, the pure parser, the sample payload the
console's "send test event" button sends, the dedup rule, and the intake URL it posts to.
`hypercare.feedback.adapters` gathers them; the list of integration types, the adapter
table and the samples are derived from there and written nowhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from hypercare.feedback.config import IntegrationOptions
from hypercare.feedback.drafts import SignalDraft

Adapter = Callable[[bytes, Mapping[str, str], IntegrationOptions], list[SignalDraft]]
# A test event for one integration: the body, and the headers its source would send with
# it (the caller adds the test marker). Raises `Rejected` when none can be made.
Sample = Callable[[IntegrationOptions], tuple[bytes, dict[str, str]]]

SUMMARY = "Test event from the Hypercare console ({kind}); safe to ignore"
TEST_DETAIL = "Sent by the 'send test event' button."


@dataclass(frozen=True, slots=True)
class Integration:
    """One source of alerts, as a module of `hypercare.feedback.adapters` defines it."""

    type: str  # in the config file and the API (`type: alertmanager`)
    parse: Adapter  # pure: body, headers, options -> drafts, or raises Rejected
    sample: Sample  # the test event the console sends
    dedup: str  # what the dedup key is made of, in words
    intake: Literal["webhook", "v2/enqueue"] = "webhook"  # the tail of its intake URL
    needs_mapping: bool = False  # reads the body through a declared field mapping


def now_iso() -> str:
    """The current time as senders write it (RFC 3339, UTC, ``Z``)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def test_ref() -> str:
    """A fresh reference for a test event's own dedup key."""
    return f"hypercare-test-{uuid.uuid4().hex[:12]}"

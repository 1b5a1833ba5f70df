"""Bounded input types shared by every API schema and view.

The store decides what fits: row ids are 32-bit integer columns on PostgreSQL, and both
stores keep times as UTC instants that later code turns into Unix seconds and nanoseconds.
A value outside those ranges is refused while the request is validated (422 naming the
field) instead of failing deep inside a query (500, and a different one per store).

    Id        1 .. 2**31-1        path ids, `issue`, `into`, `issue_id`
    Offset    0 .. 2**31-1        paging offsets
    Instant   aware datetime, 1970-01-01 .. 2200-01-01 UTC

NUL characters and JSON nesting are refused earlier, for every endpoint at once, by
`hypercare.api.limits.InputGuard`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from annotated_types import Interval
from pydantic import AfterValidator, AwareDatetime

MAX_ID = 2**31 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

Id = Annotated[int, Interval(ge=1, le=MAX_ID)]
Offset = Annotated[int, Interval(ge=0, le=MAX_ID)]


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(
            f"the time must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)"
        )
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_in_range)]

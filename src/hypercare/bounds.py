"""Bounded input types shared by every API schema and view.

The store decides what fits: row ids are 32-bit integer columns on PostgreSQL, and both
stores keep times as UTC instants that later code turns into Unix seconds and nanoseconds.
A value outside those ranges is refused while the request is validated (422 naming the
field) instead of failing deep inside a query (500, and a different one per store).

    Id        1 .. 2**31-1        path ids, `issue`, `into`, `issue_id`
    Offset    0 .. 2**31-1        paging offsets
    Instant   aware datetime, 1970-01-01 .. 2200-01-01 UTC
    Input     base of request body schemas: no NUL character in any text (PostgreSQL's
              text columns cannot hold one), no NaN or infinite number

NUL characters in paths, queries and forms, and JSON nested too deep, are refused before
any endpoint runs, by `hypercare.api.limits.InputGuard`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import Interval
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, model_validator

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


def nul_at(value: Any, where: str = "") -> str | None:
    """The dotted path of the first text in `value` holding a NUL character, or None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    items: Any = ()
    if isinstance(value, dict):
        items = ((str(k), v) for k, v in value.items())
        for key in value:
            if isinstance(key, str) and "\x00" in key:
                return f"{where}.{key!r}".lstrip(".")
    elif isinstance(value, list | tuple):
        items = ((str(i), v) for i, v in enumerate(value))
    for key, item in items:
        found = nul_at(item, f"{where}.{key}" if where else key)
        if found is not None:
            return found
    return None


class Input(BaseModel):
    """Base of every request body schema: text holding a NUL character is refused (422
    naming the field) instead of failing on PostgreSQL, and the same on SQLite; so are
    NaN and infinite numbers, which JSON columns cannot hold."""

    model_config = ConfigDict(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = nul_at(data)
        if where is not None:
            raise ValueError(
                f"{where or 'the text'} holds a NUL character (\\u0000), which cannot be "
                "stored; remove it"
            )
        return data

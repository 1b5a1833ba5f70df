"""Call detail: filtered, cursor-paginated listing and the detail of one call."""

from __future__ import annotations

import base64
import binascii
import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import InvalidInput, NotFound
from hypercare.telemetry.callkeys import key_match, windows_back
from hypercare.telemetry.models import CallRead, CallsPage, TelemetryCall

MAX_LIMIT = 1000
# how far back an id lookup without a time range searches: the default call retention
DEFAULT_HORIZON = 72 * 3600.0
# how far either side of a hinted time (`get_call(near=...)`) the first search looks
NEAR_SECONDS = 3600.0


def encode_cursor(ts: float, row_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts, row_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, row_id = json.loads(raw)
        if not isinstance(ts, int | float) or not isinstance(row_id, int):
            raise ValueError
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidInput(
            "invalid cursor; pass the next_cursor of a previous page unchanged"
        ) from None
    return float(ts), row_id


def to_read(row: TelemetryCall) -> CallRead:
    return CallRead(
        id=row.id,
        time=datetime.fromtimestamp(row.ts, UTC),
        route=row.route,
        consumer=row.consumer,
        method=row.method,
        path_template=row.path_template,
        path=row.path,
        status=row.status,
        request_bytes=row.request_bytes,
        response_bytes=row.response_bytes,
        target=row.target,
        upstream=row.upstream,
        gateway_ms=row.gateway_ms,
        upstream_ms=row.upstream_ms,
        total_ms=row.total_ms,
        error=row.error,
        client_ip=row.client_ip,
        request_id=row.request_id,
        trace_id=row.trace_id,
        user_agent=row.user_agent,
        capture=json.loads(row.capture) if row.capture else None,
    )


def _status_filter(status: str) -> Any:
    s = status.strip().lower()
    if len(s) == 3 and s[0] in "12345" and s[1:] == "xx":
        low = int(s[0]) * 100
        return and_(TelemetryCall.status >= low, TelemetryCall.status < low + 100)
    if s.isdigit() and 100 <= int(s) <= 599:
        return TelemetryCall.status == int(s)
    raise InvalidInput(f"invalid status {status!r}: use a code (503) or a class (5xx)")


def _id_matches(
    request_id: str | None, trace_id: str | None, start: float, end: float
) -> list[Any]:
    conds = []
    if request_id is not None:
        conds.append(
            key_match(TelemetryCall.request_key, TelemetryCall.request_id, request_id, start, end)
        )
    if trace_id is not None:
        conds.append(
            key_match(TelemetryCall.trace_key, TelemetryCall.trace_id, trace_id, start, end)
        )
    return conds


async def list_calls(
    *,
    session: AsyncSession,
    route: str | None = None,
    status: str | None = None,
    consumer: str | None = None,
    error: str | None = None,
    request_id: str | None = None,
    trace_id: str | None = None,
    start: float | None = None,
    end: float | None = None,
    limit: int = 100,
    cursor: str | None = None,
    horizon: float = DEFAULT_HORIZON,
    now: float | None = None,
) -> CallsPage:
    """Newest first. `error` is an error kind, or ``any`` for every call with one.

    With a request or trace id, calls are found through their keys (see callkeys.py), one
    index seek per second searched: in [from, to) when given, else newest first back to
    `horizon` seconds ago (the call retention), stopping once the page is full."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    conds: list[Any] = []
    if route is not None:
        conds.append(TelemetryCall.route == route)
    if consumer is not None:
        conds.append(TelemetryCall.consumer == consumer)
    if status is not None:
        conds.append(_status_filter(status))
    if error is not None:
        conds.append(TelemetryCall.error != "" if error == "any" else TelemetryCall.error == error)
    if start is not None:
        conds.append(TelemetryCall.ts >= start)
    if end is not None:
        conds.append(TelemetryCall.ts < end)
    if cursor:
        ts, row_id = decode_cursor(cursor)
        conds.append(
            or_(TelemetryCall.ts < ts, and_(TelemetryCall.ts == ts, TelemetryCall.id < row_id))
        )
    order = (TelemetryCall.ts.desc(), TelemetryCall.id.desc())
    if request_id is None and trace_id is None:
        stmt = select(TelemetryCall).where(*conds).order_by(*order).limit(limit + 1)
        rows = list((await session.scalars(stmt)).all())
    else:
        now = time.time() if now is None else now
        if start is not None or end is not None:
            ranges = [
                (
                    start if start is not None else now - horizon,
                    end if end is not None else now + 60,
                )
            ]
        else:
            ranges = list(windows_back(now, now - horizon))
        rows = []
        for a, b in ranges:
            stmt = (
                select(TelemetryCall)
                .where(*conds, *_id_matches(request_id, trace_id, a, b))
                .order_by(*order)
                .limit(limit + 1 - len(rows))
            )
            rows += (await session.scalars(stmt)).all()
            if len(rows) > limit:
                break
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].ts, rows[-1].id) if more and rows else None
    return CallsPage(items=[to_read(r) for r in rows], next_cursor=next_cursor)


async def get_call(
    *,
    session: AsyncSession,
    request_id: str,
    horizon: float = DEFAULT_HORIZON,
    now: float | None = None,
    near: float | None = None,
) -> CallRead:
    """The newest stored call with this request id. `near`, when the caller knows roughly
    when the call happened (a link from a call list, a report citing it), is searched
    first (an hour either side: 7,200 index seeks instead of one per second back to it)."""
    if near is not None:
        page = await list_calls(
            session=session,
            request_id=request_id,
            limit=1,
            start=near - NEAR_SECONDS,
            end=near + NEAR_SECONDS,
        )
        if page.items:
            return page.items[0]
    page = await list_calls(
        session=session, request_id=request_id, limit=1, horizon=horizon, now=now
    )
    if not page.items:
        raise NotFound(
            f"no stored call with request id {request_id!r} "
            "(call detail is kept for telemetry.retention.calls)"
        )
    return page.items[0]

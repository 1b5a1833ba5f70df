"""Call detail: filtered, cursor-paginated listing and the detail of one call.

Calls are stored as one block per ingest batch (segments.py). A search reads the blocks
that overlap its time range and whose summaries can match, newest first, a few per round
trip, and filters their rows; it stops once the page is full and no block left can hold a
newer call. A search by request or trace id reads only the blocks its lookup keys point
at (callkeys.py).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.errors import InvalidInput, NotFound
from hypercare.telemetry import segments
from hypercare.telemetry.callkeys import candidate_keys, windows_back
from hypercare.telemetry.models import (
    CallRead,
    CallsPage,
    TelemetryCallKey,
    TelemetrySegment,
    TelemetrySegmentRoute,
)
from hypercare.telemetry.segments import (
    F_CAPTURE,
    F_CONSUMER,
    F_ERROR,
    F_REQUEST_ID,
    F_ROUTE,
    F_STATUS,
    F_TIME,
    F_TRACE_ID,
    FIELDS,
    REQUEST,
    TRACE,
)

MAX_LIMIT = 1000
# how far back an id lookup without a time range searches: the default call retention
DEFAULT_HORIZON = 72 * 3600.0
# how far either side of a hinted time (`get_call(near=...)`) the first search looks
NEAR_SECONDS = 3600.0
# how much of the blocks a search reads per round trip: this much first (a page of recent
# calls is usually in the newest block), then twice as much each time, up to the maximum
FIRST_READ_BYTES = 64 * 1024
MAX_READ_BYTES = 8 * 1024 * 1024
CANDIDATE_PAGE = 512  # block summaries read at a time
_SEG = TelemetrySegment
Row = list[Any]


class Found(NamedTuple):
    ts: float
    id: int
    row: Row


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


def to_read(found: Found) -> CallRead:
    row = found.row
    values = dict(zip(FIELDS[1:], row[1:F_CAPTURE], strict=True))
    return CallRead(
        id=found.id,
        time=datetime.fromtimestamp(row[F_TIME], UTC),
        capture=row[F_CAPTURE] if len(row) > F_CAPTURE else None,
        **values,
    )


@dataclass
class Criteria:
    """What a search asks for: conditions on a block's summary (which blocks to read) and
    checks on each row of a block read (which calls match)."""

    blocks: list[Any] = field(default_factory=list)
    checks: list[Callable[[Row], bool]] = field(default_factory=list)
    cursor: tuple[float, int] | None = None
    # the summaries searched: the blocks', or one route's parts of them
    table: Any = TelemetrySegment
    # conditions on the blocks' own sets while searching route parts
    joined: list[Any] = field(default_factory=list)

    def where(self, block: Any, check: Callable[[Row], bool]) -> None:
        self.blocks.append(block)
        self.checks.append(check)

    def matches(
        self, batch_id: int, rows: Sequence[Row], positions: Iterable[int] | None = None
    ) -> list[Found]:
        """The matching calls of a block (of its rows at `positions` only, when given)."""
        base = batch_id << segments.POS_BITS
        checks, cursor = self.checks, self.cursor
        found = []
        for pos in range(len(rows)) if positions is None else positions:
            if pos >= len(rows):
                continue
            row = rows[pos]
            if all(check(row) for check in checks):
                item = Found(row[F_TIME], base | pos, row)
                if cursor is None or (item.ts, item.id) < cursor:
                    found.append(item)
        return found


def _status(want: Criteria, status: str) -> None:
    s = status.strip().lower()
    statuses = want.table.statuses
    if len(s) == 3 and s[0] in "12345" and s[1:] == "xx":
        low = int(s[0]) * 100
        want.where(
            statuses.contains(f"\n{s[0]}", autoescape=True),
            lambda r: low <= r[F_STATUS] < low + 100,
        )
        return
    if s.isdigit() and 100 <= int(s) <= 599:
        code = int(s)
        want.where(
            statuses.contains(segments.tag(code), autoescape=True),
            lambda r: r[F_STATUS] == code,
        )
        return
    raise InvalidInput(f"invalid status {status!r}: use a code (503) or a class (5xx)")


def _equal(column: Any, index: int, value: str, want: Criteria) -> None:
    want.where(column.contains(segments.tag(value), autoescape=True), lambda r: r[index] == value)


def criteria(
    *,
    route: str | None = None,
    consumer: str | None = None,
    status: str | None = None,
    error: str | None = None,
    request_id: str | None = None,
    trace_id: str | None = None,
    start: float | None = None,
    end: float | None = None,
    cursor: str | None = None,
) -> Criteria:
    want = Criteria()
    summary: Any
    if route is not None:
        # one route: its parts of the blocks, through the (route, last_ts) index
        want.table = summary = TelemetrySegmentRoute
        want.where(summary.route == route, lambda r: r[F_ROUTE] == route)
    else:
        summary = _SEG
    if consumer is not None:
        _equal(_SEG.consumers, F_CONSUMER, consumer, want)
        if summary is not _SEG:
            want.joined.append(want.blocks.pop())
    if status is not None:
        _status(want, status)
    if error == "any":
        want.where(summary.errors != "\n", lambda r: r[F_ERROR] != "")
    elif error is not None:
        _equal(summary.errors, F_ERROR, error, want)
    if start is not None:
        want.where(summary.last_ts >= start, lambda r: r[F_TIME] >= start)
    if end is not None:
        want.where(summary.first_ts < end, lambda r: r[F_TIME] < end)
    # the ids are found through their keys; the rows are still checked
    if request_id is not None:
        want.checks.append(lambda r: r[F_REQUEST_ID] == request_id)
    if trace_id is not None:
        want.checks.append(lambda r: r[F_TRACE_ID] == trace_id)
    if cursor:
        want.cursor = decode_cursor(cursor)
        want.blocks.append(summary.first_ts <= want.cursor[0])
    return want


async def load_blocks(session: AsyncSession, batch_ids: Iterable[int]) -> dict[int, list[Row]]:
    """The rows of these batches' blocks, by batch id (a deleted block is left out)."""
    ids = list(batch_ids)
    if not ids:
        return {}
    result = await session.execute(select(_SEG.batch_id, _SEG.calls).where(_SEG.batch_id.in_(ids)))
    return {batch_id: segments.loads(calls) for batch_id, calls in result}


def _newest(found: list[Found], count: int) -> list[Found]:
    found.sort(key=lambda f: (f.ts, f.id), reverse=True)
    return found[:count]


async def _candidates(
    session: AsyncSession, want: Criteria
) -> AsyncGenerator[tuple[int, float, int], None]:
    """(batch id, last call time, bytes) of the blocks that can match, newest last call
    first, read from the summaries a page at a time."""
    table = want.table
    order = (table.last_ts.desc(), table.batch_id.desc())
    after: Any = None
    while True:
        conds = list(want.blocks)
        if after is not None:
            older = and_(table.last_ts == after[1], table.batch_id < after[0])
            conds.append(or_(table.last_ts < after[1], older))
        stmt = select(table.batch_id, table.last_ts, func.length(_SEG.calls))
        if table is not _SEG:
            stmt = stmt.join_from(table, _SEG, _SEG.batch_id == table.batch_id)
        stmt = stmt.where(*conds, *want.joined).order_by(*order).limit(CANDIDATE_PAGE)
        metas = [(int(b), float(t), int(n or 0)) for b, t, n in await session.execute(stmt)]
        for meta in metas:
            yield meta
        if len(metas) < CANDIDATE_PAGE:
            return
        after = metas[-1]


async def _scan(session: AsyncSession, want: Criteria, count: int) -> list[Found]:
    """The `count` newest matching calls, reading blocks newest first (by their last
    call): the first read takes about FIRST_READ_BYTES of blocks, each next one twice as
    much, up to MAX_READ_BYTES; it stops when no block left can hold a newer match."""
    found: list[Found] = []
    budget = FIRST_READ_BYTES
    group: list[tuple[int, float, int]] = []
    size = 0

    async def read() -> None:
        nonlocal found
        blocks = await load_blocks(session, (m[0] for m in group))
        for batch_id, _, _ in group:
            found += want.matches(batch_id, blocks.get(batch_id, ()))
        found = _newest(found, count)

    async with contextlib.aclosing(_candidates(session, want)) as candidates:
        async for meta in candidates:
            if not group and len(found) >= count and found[count - 1].ts > meta[1]:
                # every call still unread is at or before this block's last call
                return found
            group.append(meta)
            size += meta[2]
            if size >= budget:
                await read()
                group, size = [], 0
                budget = min(budget * 2, MAX_READ_BYTES)
    if group:
        await read()
    return found


async def _by_key(
    session: AsyncSession, kind: int, idents: Sequence[str], start: float, end: float
) -> dict[int, list[int]]:
    """Positions of the calls whose keys match one of `idents` in [start, end), by batch
    (candidates: a hash can collide, so the rows are checked after)."""
    cond = or_(*(TelemetryCallKey.key.in_(candidate_keys(i, start, end)) for i in idents))
    places: dict[int, list[int]] = defaultdict(list)
    for (ref,) in await session.execute(select(TelemetryCallKey.ref).where(cond)):
        batch_id, pos, ref_kind = segments.place(ref)
        if ref_kind == kind:
            places[batch_id].append(pos)
    return places


async def _keyed(
    session: AsyncSession,
    want: Criteria,
    kind: int,
    idents: Sequence[str],
    start: float,
    end: float,
) -> list[Found]:
    """The calls `want` accepts among those whose keys match `idents` in [start, end)."""
    places = await _by_key(session, kind, idents, start, end)
    blocks = await load_blocks(session, places)
    found: list[Found] = []
    for batch_id, positions in places.items():
        found += want.matches(batch_id, blocks.get(batch_id, ()), positions)
    # a second at the edge of two ranges is searched in both
    return [f for f in found if start <= f.ts < end]


async def find_by_ids(
    session: AsyncSession, kind: int, idents: Sequence[str], start: float, end: float
) -> list[Row]:
    """The stored calls whose request id (`kind` REQUEST) or trace id (TRACE) is one of
    `idents`, in [start, end)."""
    index = F_REQUEST_ID if kind == REQUEST else F_TRACE_ID
    wanted = set(idents)
    want = Criteria(checks=[lambda r: r[index] in wanted])
    return [f.row for f in await _keyed(session, want, kind, idents, start, end)]


async def _by_id(
    session: AsyncSession,
    want: Criteria,
    kind: int,
    ident: str,
    ranges: Sequence[tuple[float, float]],
    count: int,
) -> list[Found]:
    """The `count` newest calls `want` accepts with this id, searching `ranges` in order
    (newest first) and stopping at the first range after which `count` are found."""
    found: list[Found] = []
    for a, b in ranges:
        found += await _keyed(session, want, kind, [ident], a, b)
        if len(found) >= count:
            break
    return _newest(found, count)


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
    want = criteria(
        route=route,
        consumer=consumer,
        status=status,
        error=error,
        request_id=request_id,
        trace_id=trace_id,
        start=start,
        end=end,
        cursor=cursor,
    )
    if request_id is None and trace_id is None:
        found = await _scan(session, want, limit + 1)
    else:
        kind, ident = (REQUEST, request_id) if request_id is not None else (TRACE, trace_id)
        assert ident is not None
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
        found = await _by_id(session, want, kind, ident, ranges, limit + 1)
    more = len(found) > limit
    found = found[:limit]
    next_cursor = encode_cursor(found[-1].ts, found[-1].id) if more and found else None
    return CallsPage(items=[to_read(f) for f in found], next_cursor=next_cursor)


async def get_call(
    *,
    session: AsyncSession,
    request_id: str,
    horizon: float = DEFAULT_HORIZON,
    now: float | None = None,
    near: float | None = None,
) -> CallRead:
    """The newest stored call with this request id: the search stops at the first (newest)
    window that holds one. `near`, when the caller knows roughly when the call happened (a
    link from a call list, a report citing it), is searched first (an hour either side:
    7,200 index seeks instead of one per second back to it)."""
    want = criteria(request_id=request_id)
    found: list[Found] = []
    if near is not None:
        found = await _by_id(
            session, want, REQUEST, request_id, [(near - NEAR_SECONDS, near + NEAR_SECONDS)], 1
        )
    if not found:
        now = time.time() if now is None else now
        windows = list(windows_back(now, now - horizon))
        found = await _by_id(session, want, REQUEST, request_id, windows, 1)
    if not found:
        raise NotFound(
            f"no stored call with request id {request_id!r} "
            "(call detail is kept for telemetry.retention.calls)"
        )
    return to_read(found[0])

"""Server-sent events: tell open pages that something changed, so they refresh fragments.

The stream only carries a change marker (the newest timeline entry id); pages fetch what
they show through their own authenticated fragment routes. Each stream ends after
`web.live_stream_max` and the browser reconnects, sending the last marker it saw as
Last-Event-ID, so no change is missed and no connection outlives a server shutdown long.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from hypercare.api.deps import State
from hypercare.api.state import AppState
from hypercare.web import queries
from hypercare.web.console import SECURITY_HEADERS
from hypercare.web.deps import ConsoleUser

router = APIRouter(include_in_schema=False)

RETRY_MS = 3000


def parse_marker(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


async def changes(
    state: AppState, since: int | None, gone: Callable[[], Awaitable[bool]]
) -> AsyncIterator[str]:
    """SSE lines: a `changed` event each time the marker moves past `since`, a comment
    line otherwise (keeps proxies from timing out and notices a closed browser)."""
    web = state.config.web
    loop = asyncio.get_running_loop()
    deadline = loop.time() + web.live_stream_max.total_seconds()
    yield f"retry: {RETRY_MS}\n\n"
    last = since
    while loop.time() < deadline and not await gone():
        async with state.sessions() as session:
            marker = await queries.change_marker(session=session)
        if last is None:
            last = marker
        if marker != last:
            last = marker
            yield f"id: {marker}\nevent: changed\ndata: {marker}\n\n"
        else:
            yield ": idle\n\n"
        await asyncio.sleep(web.live_check_interval.total_seconds())


@router.get("/live")
async def live(
    request: Request, state: State, _: ConsoleUser, since: str | None = None
) -> StreamingResponse:
    start = parse_marker(request.headers.get("last-event-id")) or parse_marker(since)
    return StreamingResponse(
        changes(state, start, request.is_disconnected),
        media_type="text/event-stream",
        headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
    )

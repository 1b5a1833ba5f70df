"""The live stream: a `changed` event when the timeline moves, idle lines otherwise."""

from __future__ import annotations

from datetime import timedelta

from hypercare.api.app import build_state
from hypercare.api.state import AppState
from hypercare.config import HypercareConfig
from hypercare.triage import service
from hypercare.triage.models import IssueCreate
from hypercare.web.config import WebConfig
from hypercare.web.live import changes, parse_marker


def _fast(state: AppState) -> AppState:
    web = WebConfig(live_check_interval=timedelta(0), live_stream_max=timedelta(seconds=5))
    return build_state(HypercareConfig(web=web), state.engine)


async def test_stream_reports_changes_and_ends(state: AppState) -> None:
    fast = _fast(state)
    async with fast.sessions() as s, s.begin():
        await service.create_issue(
            session=s, matrix=fast.matrix, data=IssueCreate(title="first"), actor="t"
        )
    seen: list[str] = []
    gone_after = 6

    async def gone() -> bool:
        return len(seen) >= gone_after

    async for line in changes(fast, since=0, gone=gone):
        seen.append(line)
        if len(seen) == 3:
            async with fast.sessions() as s, s.begin():
                await service.create_issue(
                    session=s, matrix=fast.matrix, data=IssueCreate(title="second"), actor="t"
                )
    assert seen[0].startswith("retry: ")
    events = [x for x in seen if "event: changed" in x]
    # one for the issue made before the stream (since=0), one for the one made during it
    assert len(events) == 2 and events[0].startswith("id: ")
    assert all(x == ": idle\n\n" for x in seen[1:] if x not in events)


async def test_stream_ends_at_its_time_limit(state: AppState) -> None:
    web = WebConfig(live_check_interval=timedelta(0), live_stream_max=timedelta(0))
    fast = build_state(HypercareConfig(web=web), state.engine)

    async def never() -> bool:
        return False

    lines = [line async for line in changes(fast, since=None, gone=never)]
    assert lines == ["retry: 3000\n\n"]


def test_parse_marker() -> None:
    assert parse_marker("42") == 42
    assert parse_marker(None) is None and parse_marker("x") is None
    assert parse_marker("9" * 30) is None

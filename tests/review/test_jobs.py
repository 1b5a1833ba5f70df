"""The review loop: reacts to committed resolutions only, and one issue it cannot draft
holds up neither the others nor the cursor."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hypercare.api.state import AppState
from hypercare.review import jobs, service
from tests.review.helpers import make_incident


async def test_a_rolled_back_resolution_drafts_nothing(state: AppState) -> None:
    rt = await jobs.start(state)
    async with state.sessions() as session:
        await make_incident(session, state.matrix, start=time.time() - 600)
        await session.rollback()
    assert await jobs.step(state, rt) == 0


async def test_one_failing_draft_does_not_block_the_others(
    state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = await jobs.start(state)
    async with state.sessions() as session, session.begin():
        bad = await make_incident(session, state.matrix, start=time.time() - 600)
        good = await make_incident(session, state.matrix, start=time.time() - 600)
    real = service.draft_review

    async def flaky(**kw: Any) -> Any:
        if kw["issue"].id == bad.issue_id:
            raise RuntimeError("boom")
        return await real(**kw)

    monkeypatch.setattr(service, "draft_review", flaky)
    assert await jobs.step(state, rt) == 1
    async with state.sessions() as session:
        assert await service.review_of(session=session, issue_id=good.issue_id) is not None
        assert await service.review_of(session=session, issue_id=bad.issue_id) is None
        assert await service.get_cursor(session=session) == rt.cursor
    assert await jobs.step(state, rt) == 0  # the cursor moved past both

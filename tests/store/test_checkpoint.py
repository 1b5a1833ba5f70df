"""SQLite WAL checkpoints off the commit path (`hypercare.store.checkpoint`)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.store import checkpoint as wal
from hypercare.store.base import utcnow
from hypercare.store.db import session_factory
from hypercare.triage.models import Issue
from tests.support import wait_until_async


async def _write(engine: AsyncEngine, n: int) -> None:
    async with session_factory(engine)() as session, session.begin():
        now = utcnow()
        session.add_all(
            Issue(title=f"issue {i}", priority="P3", created_at=now, updated_at=now)
            for i in range(n)
        )


async def test_a_checkpoint_copies_the_log_back(engine: AsyncEngine) -> None:
    await _write(engine, 50)
    done = await wal.checkpoint(engine)
    if engine.dialect.name != "sqlite":
        assert done is None  # PostgreSQL checkpoints itself
        return
    assert done is not None
    busy, pages, copied = done
    assert busy == 0
    assert pages > 0
    assert copied == pages  # no reader held a snapshot: the whole log went back


async def test_commits_leave_checkpoints_to_the_background(sqlite_engine: AsyncEngine) -> None:
    async with sqlite_engine.connect() as conn:
        pages = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
    assert pages == wal.AUTOCHECKPOINT_PAGES


async def test_the_background_loop_checkpoints_until_stopped(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes: list[wal.Pass | None] = []
    real = wal.checkpoint

    async def counted(eng: AsyncEngine) -> wal.Pass | None:
        result = await real(eng)
        passes.append(result)
        return result

    monkeypatch.setattr(wal, "checkpoint", counted)
    stop = asyncio.Event()
    task = asyncio.create_task(wal.checkpoints(engine, stop, every=0.01))
    if engine.dialect.name != "sqlite":
        await asyncio.wait_for(task, timeout=10)  # nothing to do: returns at once
        assert passes == []
        return
    await _write(engine, 20)
    await wait_until_async(
        lambda: any(p and p[2] > 0 for p in passes), 20, "a checkpoint that copies pages"
    )
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert task.done() and task.exception() is None


async def test_a_failing_pass_is_logged_and_the_loop_goes_on(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def failing(eng: AsyncEngine) -> wal.Pass | None:
        nonlocal calls
        calls += 1
        raise OSError("disk went away")

    monkeypatch.setattr(wal, "checkpoint", failing)
    stop = asyncio.Event()
    task = asyncio.create_task(wal.checkpoints(sqlite_engine, stop, every=0.01, idle=0.01))
    await wait_until_async(lambda: calls >= 2, 20, "a second pass after a failed one")
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert "WAL checkpoint failed" in caplog.text


def test_passes_come_often_while_writes_come_in_and_seldom_once_idle() -> None:
    every, idle = 0.1, 1.0
    # the first pass, and every pass that finds the log changed: the next one soon
    assert wal.next_wait(None, (0, 120, 120), every, idle) == every
    assert wal.next_wait((0, 120, 120), (0, 480, 480), every, idle) == every
    # the log started over since (a commit-time checkpoint): it changed
    assert wal.next_wait((0, 9_800, 9_800), (0, 35, 35), every, idle) == every
    # a reader held pages back: what it copied changed
    assert wal.next_wait((0, 480, 300), (0, 480, 480), every, idle) == every
    # nothing written since the pass before, or a failed pass: wait longer
    assert wal.next_wait((0, 480, 480), (0, 480, 480), every, idle) == idle
    assert wal.next_wait((0, 480, 480), None, every, idle) == idle

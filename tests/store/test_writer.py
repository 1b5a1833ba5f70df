"""Group commit on SQLite and PostgreSQL: concurrent works share a commit, and one failing
work fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hypercare.feedback.models import Integration
from hypercare.store.base import utcnow
from hypercare.store.db import session_factory
from hypercare.store.writer import GroupCommit

Work = Callable[[AsyncSession], Awaitable[str]]


def add(name: str, *, token_hash: str | None = None, flush: bool = False) -> Work:
    """A work that adds one integration row named `name` (the id) and returns the name."""

    async def work(session: AsyncSession) -> str:
        session.add(
            Integration(
                id=name,
                type="webhook",
                name=name,
                token_hash=token_hash or f"hash-{name}",
                prefix="p",
                options={},
                created_at=utcnow(),
                created_by="test",
            )
        )
        if flush:
            await session.flush()
        return name

    return work


async def stored(engine: AsyncEngine) -> list[str]:
    async with session_factory(engine)() as session:
        return list(await session.scalars(select(Integration.id).order_by(Integration.id)))


async def test_concurrent_works_share_one_commit(engine: AsyncEngine) -> None:
    writer = GroupCommit(session_factory(engine))
    names = [f"w{i}" for i in range(8)]
    results = await asyncio.gather(*(writer.run(add(n)) for n in names))
    assert results == names
    # every caller was answered after the commit: the rows are there for anyone to read
    assert await stored(engine) == names
    assert (writer.groups, writer.grouped) == (1, 8)


async def test_a_failing_work_fails_alone(engine: AsyncEngine) -> None:
    writer = GroupCommit(session_factory(engine))

    async def boom(session: AsyncSession) -> str:
        await add("doomed", flush=True)(session)
        raise LookupError("no such thing")

    results = await asyncio.gather(
        writer.run(add("a")), writer.run(boom), writer.run(add("b")), return_exceptions=True
    )
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], LookupError) and str(results[1]) == "no such thing"
    assert await stored(engine) == ["a", "b"]


async def test_a_work_failing_at_commit_fails_alone(engine: AsyncEngine) -> None:
    """A constraint the database only checks when the group is flushed or committed: the
    group is rolled back and each work runs again alone."""
    writer = GroupCommit(session_factory(engine))
    results = await asyncio.gather(
        writer.run(add("first", token_hash="same")),
        writer.run(add("second", token_hash="same")),  # unique token_hash: this one loses
        writer.run(add("third")),
        return_exceptions=True,
    )
    assert results[0] == "first" and results[2] == "third"
    assert isinstance(results[1], IntegrityError)
    assert await stored(engine) == ["first", "third"]


async def test_a_caller_cancelled_before_its_turn_is_dropped(engine: AsyncEngine) -> None:
    writer = GroupCommit(session_factory(engine))
    kept = asyncio.ensure_future(writer.run(add("kept")))
    dropped = asyncio.ensure_future(writer.run(add("dropped")))
    await asyncio.sleep(0)  # both are queued; the writer has not run yet
    dropped.cancel()
    assert await kept == "kept"
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert await stored(engine) == ["kept"]


async def test_groups_are_bounded(engine: AsyncEngine) -> None:
    writer = GroupCommit(session_factory(engine), max_group=3)
    await asyncio.gather(*(writer.run(add(f"n{i}")) for i in range(7)))
    assert len(await stored(engine)) == 7
    assert writer.groups == 3  # 3 + 3 + 1


def test_max_group_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(async_sessionmaker(), max_group=0)


class Named:
    """A work that the writer may run `together` with its kind, recording each call."""

    calls: list[list[str]] = []

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, session: AsyncSession) -> str:
        (result,) = await self.together(session, [self])
        return result

    @staticmethod
    async def together(session: AsyncSession, works: list[Named]) -> list[str]:
        Named.calls.append([w.name for w in works])
        for w in works:
            await add(w.name)(session)
        return [w.name for w in works]


async def test_consecutive_works_of_a_kind_run_together(engine: AsyncEngine) -> None:
    Named.calls = []
    writer = GroupCommit(session_factory(engine))
    results = await asyncio.gather(
        writer.run(Named("a")),
        writer.run(Named("b")),
        writer.run(add("plain")),
        writer.run(Named("c")),
    )
    assert results == ["a", "b", "plain", "c"]
    assert Named.calls == [["a", "b"], ["c"]]
    assert await stored(engine) == ["a", "b", "c", "plain"]

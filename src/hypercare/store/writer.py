"""Group commit: concurrent requests' writes share one transaction and one commit.

SQLite has one writer at a time. When every intake request opens its own transaction, the
requests queue on the database's write lock (SQLite's busy handler sleeps and polls) and
pay a BEGIN, a commit and an ORM flush cycle each. `GroupCommit` instead queues the work of
concurrent requests to one writer task, which runs several requests' work in a single
transaction, commits once, and only then answers each request:

    accepted = await state.writer.run(lambda session: store(session, drafts))

Guarantees, in the order they matter:

- nothing is acknowledged before it is committed (`run` returns after the commit);
- one request's error never loses or fails the others' work: when any work in a group
  raises (or the commit fails), the whole group is rolled back and each work runs again
  alone, in its own transaction, so only the failing one fails — with its own error;
- work is run at most once per transaction; it must not do I/O other than on the session
  it is given (it may run a second time, alone, after a rollback);
- a caller cancelled before its work starts is dropped; one cancelled later may still be
  committed (like a request whose client went away after the commit).

A work may also offer ``work.together(session, works) -> results``, a function (the same
object for all works of its kind) that does consecutive works of its kind in one call — the
intake stores several deliveries with one insert of their signals that way. Alone, a work
is still called as ``work(session)``.

The writer task exists only while work is queued: it starts with the first call and ends
when the queue is empty, so nothing is left running when the event loop closes.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")

MAX_GROUP = 32  # works per transaction: bounds how long one commit holds the write lock


class _Job(Generic[T]):
    __slots__ = ("future", "work")

    def __init__(
        self, work: Callable[[AsyncSession], Awaitable[T]], future: asyncio.Future[T]
    ) -> None:
        self.work = work
        self.future = future


class GroupCommit:
    """One writer for many concurrent callers; see the module docstring."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, max_group: int = MAX_GROUP
    ) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be at least 1, not {max_group}")
        self._sessions = sessions
        self._max_group = max_group
        self._queue: collections.deque[_Job[Any]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self.groups = 0  # transactions committed (with more than one work: grouped)
        self.grouped = 0  # works committed in a group of two or more

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work(session)` in a transaction shared with other callers; return its result
        once that transaction is committed, or raise what `work` raised."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(work, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="hypercare-group-commit")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                group: list[_Job[Any]] = []
                while self._queue and len(group) < self._max_group:
                    job = self._queue.popleft()
                    if not job.future.cancelled():
                        group.append(job)
                try:
                    if len(group) > 1:
                        await self._together(group)
                    elif group:
                        await self._alone(group[0])
                except BaseException:
                    # this task was cancelled mid-group (the loop is closing): nothing of the
                    # group was committed, so no caller may wait for an answer forever
                    for job in group:
                        if not job.future.done():
                            job.future.cancel()
                    raise
        finally:
            self._task = None
            for job in self._queue:  # only when this task itself was cancelled
                if not job.future.done():
                    job.future.cancel()
            self._queue.clear()

    async def _together(self, group: list[_Job[Any]]) -> None:
        results: list[Any] = []
        try:
            async with self._sessions() as session:
                try:
                    start = 0
                    while start < len(group):
                        together = getattr(group[start].work, "together", None)
                        end = start + 1
                        if together is None:
                            results.append(await group[start].work(session))
                        else:
                            while (
                                end < len(group)
                                and getattr(group[end].work, "together", None) is together
                            ):
                                end += 1
                            works = [job.work for job in group[start:end]]
                            results.extend(await together(session, works))
                        start = end
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        except Exception:
            # which work failed matters less than that the others must not: run each alone
            for job in group:
                await self._alone(job)
            return
        self.groups += 1
        self.grouped += len(group)
        for job, result in zip(group, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)

    async def _alone(self, job: _Job[Any]) -> None:
        try:
            async with self._sessions() as session:
                try:
                    result = await job.work(session)
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        except Exception as exc:
            if not job.future.done():
                job.future.set_exception(exc)
            return
        self.groups += 1
        if not job.future.done():
            job.future.set_result(result)

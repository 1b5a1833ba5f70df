"""SQLite connections whose statements cost one hand-off to the database thread each.

aiosqlite runs a connection's calls on a thread of its own; SQLAlchemy's adapter makes four
calls per statement (open a cursor, execute, fetch the rows, close the cursor), and each is a
round trip between the event loop and that thread: two thread wake-ups, and on a busy machine
two waits for a core. `connect` gives SQLAlchemy (as its ``async_creator``) an aiosqlite
connection whose cursors do the four in one call on the database thread: the rows, the
description, the row count and the last row id come back together, and fetching and closing
are local. Everything else (commit, rollback, closing the connection) is aiosqlite's own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url

_Outcome = tuple[list[Any], Any, int, int | None]


def _run(
    conn: sqlite3.Connection, sql: str, parameters: Any, many: bool
) -> _Outcome:  # on the database thread
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class Cursor:
    """The part of `aiosqlite.Cursor` that SQLAlchemy's adapter uses; every statement in one
    call on the connection's thread, its rows kept here."""

    arraysize = 1

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self._at = 0
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _do(self, sql: str, parameters: Any, many: bool) -> Cursor:
        # aiosqlite's own way to run a call on the connection's thread (untyped there)
        run: Callable[..., Awaitable[_Outcome]] = self._conn._execute
        outcome = await run(_run, self._conn._conn, sql, parameters, many)
        self._rows, self.description, self.rowcount, self.lastrowid = outcome
        self._at = 0
        return self

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Cursor:
        return await self._do(sql, () if parameters is None else parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor:
        return await self._do(sql, parameters, True)

    def _take(self, count: int | None) -> list[Any]:
        end = len(self._rows) if count is None else self._at + count
        rows = self._rows[self._at : end]
        self._at += len(rows)
        return rows

    async def fetchall(self) -> list[Any]:
        return self._take(None)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._take(self.arraysize if size is None else size)

    async def fetchone(self) -> Any:
        rows = self._take(1)
        return rows[0] if rows else None

    async def close(self) -> None:
        self._rows, self._at = [], 0


class Connection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors are `Cursor`s."""

    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)


def connector(url: str, connect_args: dict[str, Any] | None = None) -> Callable[[], Connection]:
    """The ``async_creator`` for a ``sqlite+aiosqlite`` URL: a `Connection` opened with the
    arguments SQLAlchemy would give aiosqlite for that URL and `connect_args` (its thread a
    daemon, as SQLAlchemy makes aiosqlite's)."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    (database,) = args
    kwargs = {**kwargs, **(connect_args or {})}

    def create() -> Connection:
        conn = Connection(lambda: sqlite3.connect(database, **kwargs), iter_chunk_size=64)
        conn._thread.daemon = True
        return conn

    return create


__all__ = ["Connection", "Cursor", "connector"]

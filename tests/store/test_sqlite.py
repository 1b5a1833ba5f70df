"""SQLite connections with one hand-off to the database thread per statement
(`hypercare.store.sqlite`), through SQLAlchemy as the product uses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.feedback.models import Integration
from hypercare.store import sqlite
from hypercare.store.base import utcnow
from hypercare.store.db import create_engine, session_factory


@pytest.fixture
def engine(sqlite_engine: AsyncEngine) -> AsyncEngine:
    return sqlite_engine  # this module is about SQLite only


def row(name: str) -> dict[str, Any]:
    return {
        "id": name,
        "type": "webhook",
        "name": name,
        "token_hash": f"hash-{name}",
        "prefix": "p",
        "options": {"n": name},
        "created_at": utcnow(),
        "created_by": "test",
        "disabled": False,
    }


def count_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call run on a connection's database thread, by function name."""
    calls: list[str] = []
    real = sqlite.Connection._execute

    async def counting(self: sqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(sqlite.Connection, "_execute", counting)
    return calls


async def test_the_engine_uses_the_one_call_connection(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, sqlite.Connection)
        # the pragmas of `store.db` applied on connect, through the same cursors
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"


async def test_a_statement_is_one_call_on_the_database_thread(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(Integration), [row("a"), row("b"), row("c")])
    calls = count_calls(monkeypatch)
    async with engine.connect() as conn:
        del calls[:]  # connecting (a pool checkout) is not the statement
        rows = (await conn.execute(select(Integration.id).order_by(Integration.id))).all()
        assert [r[0] for r in rows] == ["a", "b", "c"]
        assert calls == ["_run"]  # not cursor, execute, fetchall and close apart
        result = await conn.execute(
            update(Integration).where(Integration.id.in_(["a", "b"])).values(disabled=True)
        )
        assert result.rowcount == 2
        assert calls == ["_run", "_run"]


async def test_rows_and_ids_come_back_as_from_aiosqlite(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        session.add_all([Integration(**row(n)) for n in ("x", "y")])
        await session.flush()
        found = await session.scalars(select(Integration).order_by(Integration.id))
        assert [(i.id, i.options) for i in found] == [("x", {"n": "x"}), ("y", {"n": "y"})]
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        made = await conn.execute(text("INSERT INTO t (v) VALUES ('one')"))
        assert made.lastrowid == 1
        many = await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "2"}, {"v": "3"}])
        assert many.rowcount == 2
        # fetched in parts: the rows were read in the one call, handed out here
        result = await conn.execute(text("SELECT v FROM t ORDER BY id"))
        assert result.fetchone() == ("one",)
        assert result.fetchmany(1) == [("2",)]
        assert result.fetchall() == [("3",)]
        assert (await conn.execute(text("SELECT v FROM t WHERE id = 99"))).first() is None


async def test_errors_are_sqlalchemys_and_the_transaction_rolls_back(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(Integration), [row("a")])
    async with engine.connect() as conn:
        await conn.execute(insert(Integration), [row("b")])
        with pytest.raises(IntegrityError):
            await conn.execute(insert(Integration), [row("a")])  # the same primary key
        await conn.rollback()
        with pytest.raises(OperationalError):
            await conn.execute(text("SELECT * FROM no_such_table"))
    async with engine.connect() as conn:
        ids = (await conn.execute(select(Integration.id))).scalars().all()
    assert ids == ["a"]  # "b" went with its transaction


async def test_connect_args_reach_sqlite(tmp_path: Path) -> None:
    eng = create_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'ro.db'}", connect_args={"isolation_level": None}
    )
    try:
        async with eng.connect() as conn:
            raw = await conn.get_raw_connection()
            assert raw.driver_connection._conn.isolation_level is None
    finally:
        await eng.dispose()

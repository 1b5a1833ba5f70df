"""PostgreSQL connections are checked before use only after sitting idle (`store.db`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.store.db import create_engine
from tests.conftest import PG_HOST, PG_PORT, PG_URL, require_service

pytestmark = pytest.mark.postgres


@pytest.fixture
async def admin() -> AsyncIterator[AsyncEngine]:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    eng = create_engine(PG_URL)
    yield eng
    await eng.dispose()


async def _pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(admin: AsyncEngine, pid: int) -> None:
    async with admin.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


def _count_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    dialect = engine.sync_engine.dialect
    real = dialect.do_ping
    pings: list[int] = []

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(PG_URL, ping_idle_after=3600)
    try:
        pings = _count_pings(engine, monkeypatch)
        first = await _pid(engine)
        for _ in range(5):
            assert await _pid(engine) == first  # the same pooled connection, unchecked
        assert pings == []
    finally:
        await engine.dispose()


async def test_an_idle_connection_is_checked_and_a_dead_one_replaced(
    admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(PG_URL, ping_idle_after=0)  # every checkout counts as idle
    try:
        pings = _count_pings(engine, monkeypatch)
        first = await _pid(engine)
        await _terminate(admin, first)  # the server drops the pooled connection
        second = await _pid(engine)  # the check finds it dead: a new one is handed out
        assert second != first
        assert len(pings) >= 2
    finally:
        await engine.dispose()


async def test_a_dead_connection_used_a_moment_ago_fails_once_then_the_pool_recovers(
    admin: AsyncEngine,
) -> None:
    """The price of not checking a recently used connection: a server that dropped it in
    that moment fails one statement; the pool then replaces its connections."""
    engine = create_engine(PG_URL, ping_idle_after=3600)
    try:
        first = await _pid(engine)
        await _terminate(admin, first)
        with pytest.raises(DBAPIError) as failed:
            await _pid(engine)
        assert failed.value.connection_invalidated
        assert await _pid(engine) != first
    finally:
        await engine.dispose()

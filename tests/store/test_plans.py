"""PostgreSQL plans each statement with the tables as they are now (`store.db`): a plan made
while a table was near empty is not reused once it has grown."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hypercare.store.db import PLAN_CACHE_MODE
from tests.conftest import pg_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
async def schema_engine() -> AsyncIterator[AsyncEngine]:
    async with pg_schema() as eng:
        yield eng


async def test_every_connection_plans_at_each_execution(schema_engine: AsyncEngine) -> None:
    async with schema_engine.connect() as one, schema_engine.connect() as two:
        for conn in (one, two):
            mode = (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
            assert mode == PLAN_CACHE_MODE == "force_custom_plan"


async def _scans_after_growth(conn: AsyncConnection) -> tuple[int, int]:
    """A foreign-key check used while its table held one row, again once it holds 50,000:
    the (sequential, index) scans of that table by 20 checks in one transaction."""
    await conn.execute(
        text("CREATE TABLE parent (id int PRIMARY KEY) WITH (autovacuum_enabled = false)")
    )
    await conn.execute(
        text(
            "CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent (id))"
            " WITH (autovacuum_enabled = false)"
        )
    )
    await conn.execute(text("INSERT INTO parent VALUES (1)"))
    await conn.execute(text("ANALYZE parent"))
    await conn.commit()
    for _ in range(10):  # past the five executions after which a generic plan may be kept
        await conn.execute(text("INSERT INTO child (parent_id) VALUES (1)"))
        await conn.commit()
    await conn.execute(text("INSERT INTO parent SELECT generate_series(2, 50000)"))
    await conn.commit()
    before = await _scans(conn)
    for n in range(20):
        await conn.execute(text("INSERT INTO child (parent_id) VALUES (:p)"), {"p": 2 + n * 997})
    after = await _scans(conn)
    await conn.rollback()
    return after[0] - before[0], after[1] - before[1]


async def _scans(conn: AsyncConnection) -> tuple[int, int]:
    """This connection's (sequential, index) scans of `parent` not yet sent to the server's
    statistics (the current transaction's, and maybe some before)."""
    row = (
        await conn.execute(
            text(
                "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
                " WHERE relname = 'parent' AND schemaname = current_schema()"
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def test_a_check_made_on_a_small_table_uses_its_index_once_it_has_grown(
    schema_engine: AsyncEngine,
) -> None:
    async with schema_engine.connect() as conn:
        seq, idx = await _scans_after_growth(conn)
    assert (seq, idx) == (0, 20)


async def test_without_the_setting_the_small_tables_plan_is_kept(
    schema_engine: AsyncEngine,
) -> None:
    """The control: PostgreSQL's default keeps the generic plan made on one row."""
    async with schema_engine.connect() as conn:
        await conn.execute(text("SET plan_cache_mode = auto"))
        await conn.commit()
        seq, idx = await _scans_after_growth(conn)
    assert seq == 20, (seq, idx)

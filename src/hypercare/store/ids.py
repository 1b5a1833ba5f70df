"""Primary keys handed out before an insert, so that SQLite inserts many rows in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def preassign_ids(
    session: AsyncSession, model: Any, rows: Sequence[Any], *, top: int | None = None
) -> None:
    """Give new rows (of `model`, whose primary key is an integer ``id``) their primary keys so
    SQLite inserts them in one executemany.

    SQLite cannot tie RETURNING rows to parameter sets, so the ORM would otherwise insert row
    by row to learn each id. Call this only after the transaction's first write, when SQLite's
    single write lock is held and no other writer can take the same ids. PostgreSQL batches
    with RETURNING on its own and is left alone. `top`: the table's highest id, when the
    caller knows it (the row it has just inserted, say): no query then."""
    rows = [r for r in rows if r.id is None]
    if len(rows) < 2 or session.get_bind().dialect.name != "sqlite":
        return
    if top is None:
        with session.no_autoflush:
            top = await session.scalar(select(func.max(model.id))) or 0
    for offset, row in enumerate(rows, start=1):
        row.id = top + offset


async def preassign_new(session: AsyncSession, *models: Any) -> None:
    """`preassign_ids` for the session's pending new rows of each of `models` (SQLite only;
    the write lock must be held)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    for model in models:
        await preassign_ids(session, model, [o for o in session.new if isinstance(o, model)])

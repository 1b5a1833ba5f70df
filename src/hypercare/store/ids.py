"""Primary keys handed out before an insert, so that SQLite inserts many rows in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from hypercare.store import bulk


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


async def insert_new(
    session: AsyncSession, model: Any, rows: Sequence[Any], *, write_locked: bool
) -> bool:
    """Insert new objects of `model` (transient, primary key ``id`` unset) as plain rows with
    one statement per table instead of a flush (what the ORM spends per inserted row is a good
    part of the intake's cost per signal). They get their ids and stay out of the session:
    `adopt` those that later changes must reach the database through the session.

    On SQLite, unless `write_locked` (the transaction already wrote), the first row goes alone
    to take the write lock and learn the top id, the others get the ids after it; on
    PostgreSQL they go in with one ``INSERT … RETURNING id``, the ids from the table's
    sequence in the order of the rows. Returns True: the write lock is held."""
    if not rows:
        return write_locked
    table = model.__table__
    values = row_values(model, rows)
    if session.get_bind().dialect.name != "sqlite":
        made = await session.execute(bulk.insert_returning_ids(table), values)
        for obj, new_id in zip(rows, made.scalars(), strict=True):
            obj.id = new_id
        return True
    if write_locked:
        top = await session.scalar(select(func.max(model.id))) or 0
    else:
        first = await session.execute(bulk.insert_statement(table), values[0])
        result = cast(CursorResult[Any], first)
        top = result.lastrowid - 1  # the first row's id: SQLite's rowid
    for offset, (obj, row) in enumerate(zip(rows, values, strict=True), start=1):
        obj.id = row["id"] = top + offset
    rest = values if write_locked else values[1:]
    if rest:
        await session.execute(bulk.insert_statement(table), rest)
    return True


async def insert_many(session: AsyncSession, groups: Sequence[tuple[Any, Sequence[Any]]]) -> None:
    """PostgreSQL: insert new objects of several models as plain rows (like `insert_new`),
    with one statement for the ids they lack (`assign_ids`: the parents have theirs when the
    children's rows are made) and one for all their rows (`hypercare.store.bulk.write`)."""
    await assign_ids(session, groups)
    await bulk.write(
        session,
        [
            bulk.Insert(model.__table__, row_values(model, rows, with_id=True))
            for model, rows in groups
        ],
    )


async def assign_ids(
    session: AsyncSession, groups: Sequence[tuple[Any, Sequence[Any]]], *, lock: Sequence[str] = ()
) -> None:
    """PostgreSQL: give the objects of each model that have none an id from its table's
    sequence, all in one statement (which also takes the advisory locks of `lock`, see
    `hypercare.store.bulk.allocate_ids`)."""
    wanted = [(model, [o for o in rows if o.id is None]) for model, rows in groups]
    wanted = [(model, rows) for model, rows in wanted if rows]
    if not wanted and not lock:
        return
    tables = [(model.__table__, len(rows)) for model, rows in wanted]
    ids = await bulk.allocate_ids(session, tables, lock=lock)
    for (_, rows), new in zip(wanted, ids, strict=True):
        for obj, new_id in zip(rows, new, strict=True):
            obj.id = new_id


def row_values(model: Any, rows: Sequence[Any], *, with_id: bool = False) -> list[dict[str, Any]]:
    """The column values of new objects of `model` as plain rows: the object's, else the
    column's default, which is also set on the object (so no attribute is left to load)."""
    columns = [c for c in model.__table__.columns if with_id or c.key != "id"]
    values = []
    for obj in rows:
        held = obj.__dict__
        row: dict[str, Any] = {}
        for column in columns:
            if column.key in held:
                row[column.key] = held[column.key]
            else:
                value = bulk.column_default(column)
                setattr(obj, column.key, value)
                row[column.key] = value
        values.append(row)
    return values


def adopt(session: AsyncSession, rows: Sequence[Any]) -> None:
    """Put objects just inserted with plain rows (every column set, ids included) in the
    session as persistent, as if read back."""
    for obj in rows:
        make_transient_to_detached(obj)
        session.add(obj)

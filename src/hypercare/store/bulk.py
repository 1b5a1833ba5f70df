"""Plain rows into several tables at once: the intake's writes at the end of a group commit.

The intake writes a handful of rows per signal into several tables (the signal, its dedup
group, its timeline entry, its link, the decided columns of the signal). Through SQLAlchemy
each table is a statement of its own and each row goes through its parameter processing; on
PostgreSQL each statement is also a round trip, so the statements, not the rows, set the
cost of a small group commit. `write` takes the steps of a group commit (`Insert`, `Update`)
in the order their foreign keys need, and

- on PostgreSQL sends them as one statement: each step a data-modifying ``WITH`` query over
  ``unnest`` of one array parameter per column (rows inserted in the order given, ids from
  their sequences in that order), on the session's connection and transaction;
- elsewhere (SQLite: in-process, no round trips) runs one executemany per step.

Values go through each column type's own bind processing first (JSON serialised, dates
made UTC), so a row reads back the same whichever way it was written. `allocate_ids` hands
out the ids of rows about to be inserted, so that rows referring to them can go in the same
statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ARRAY, Table, any_, bindparam, insert, inspect, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value


@dataclass(frozen=True)
class Insert:
    """Rows (dicts of column values; the same keys in every row) for `table`. A column the
    rows leave out takes its Python-side default (as through SQLAlchemy's INSERT), or its
    server's (an ``id`` from its sequence)."""

    table: Table
    rows: Sequence[dict[str, Any]]


@dataclass(frozen=True)
class Update:
    """New values of some columns of rows of `table`, by id: each row holds ``id`` and the
    columns it sets (the same keys in every row)."""

    table: Table
    rows: Sequence[dict[str, Any]]


Step = Insert | Update


async def write(session: AsyncSession, steps: Sequence[Step]) -> None:
    """Run `steps` in order, in the session's transaction (see the module docstring)."""
    steps = [s for s in steps if s.rows]
    if not steps:
        return
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        for step in steps:
            if isinstance(step, Insert):
                await session.execute(_statement(step.table, False), list(step.rows))
            else:  # the id as ``:_id``: ``:id`` would be taken for the SET clause
                rows = [{("_id" if k == "id" else k): v for k, v in r.items()} for r in step.rows]
                await session.execute(_statement(step.table, True), rows)
        return
    sql, columns = _shape(dialect, steps)
    params: list[Any] = []
    for step, processors in zip(steps, columns, strict=True):
        for key, process, default in processors:
            if default is None:
                values = [row[key] for row in step.rows]
            else:  # a column the rows leave out: its default, as an INSERT through SQLAlchemy
                values = [column_default(default) for _ in step.rows]
            params.append([process(v) for v in values] if process else values)
    await _raw(session, sql, params)


async def allocate_ids(
    session: AsyncSession, wanted: Sequence[tuple[Table, int]], *, lock: Sequence[str] = ()
) -> list[list[int]]:
    """New ids for rows about to be inserted, from each table's ``id`` sequence, in one
    statement: for each (table, count) of `wanted`, `count` ids in increasing order
    (PostgreSQL only). `lock`: keys whose transaction-level advisory locks the same statement
    takes, in sorted order (no deadlocks), held until commit."""
    parts, params = [], []
    for i, (table, count) in enumerate(wanted):
        params += [table.name, max(0, count)]
        a, b = len(params) - 1, len(params)
        parts.append(
            f"SELECT {i} AS k, nextval(pg_get_serial_sequence(${a}, 'id')) AS id"
            f" FROM generate_series(1, ${b}::int)"
        )
    if lock:
        params.append(sorted(set(lock)))
        parts.append(
            "SELECT -1 AS k, count(pg_advisory_xact_lock(hashtextextended(x, 0))) AS id"
            f" FROM unnest(${len(params)}::text[]) AS x"
        )
    out: list[list[int]] = [[] for _ in wanted]
    if parts:
        for k, new_id in await _raw(session, " UNION ALL ".join(parts), params, fetch=True):
            if k >= 0:
                out[k].append(int(new_id))
    return [sorted(ids) for ids in out]


def take_dirty(session: AsyncSession, *models: Any) -> list[Step]:
    """The changes to loaded objects of `models` (persistent, modified) as `Update` steps, one
    per set of changed columns, taken out of the unit of work: the next flush skips them, and
    the objects keep their values as if written. For `write`, to send them with the other
    rows of a batch instead of in a flush of their own. New and deleted objects are left to
    the flush."""
    by_keys: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for obj in list(session.dirty):
        if not isinstance(obj, models):
            continue
        state = inspect(obj)
        if not state.persistent or not state.committed_state:
            continue
        table = cast(Table, type(obj).__table__)
        keys = tuple(sorted(k for k in state.committed_state if k in table.c and k != "id"))
        if len(keys) != len(state.committed_state):
            continue  # something else changed (a relationship): the flush knows how
        by_keys.setdefault((table, keys), []).append(
            {"id": obj.id, **{k: state.dict[k] for k in keys}}
        )
        for k in keys:
            set_committed_value(obj, k, state.dict[k])
    return [Update(table, rows) for (table, _), rows in by_keys.items()]


_STATEMENTS: dict[tuple[Table, bool], Any] = {}


def _statement(table: Table, by_id: bool) -> Any:
    """The insert, or the update by ``:_id``, of `table` (built once: building a statement
    costs more than running a small one)."""
    made = _STATEMENTS.get((table, by_id))
    if made is None:
        made = _STATEMENTS[(table, by_id)] = (
            update(table).where(table.c.id == bindparam("_id")) if by_id else insert(table)
        )
    return made


class PerDialect:
    """A statement built once per database dialect (and per `variant`, hashable arguments
    that change its shape), by `build(in_list, *variant)`: `in_list(column, name)` is
    ``column IN (:name)`` on SQLite, and ``column = ANY(:name)`` (one array parameter) on
    PostgreSQL, where a statement's text then stays the same whatever the list's length, so
    the server prepares and plans it once per connection, not once per length."""

    def __init__(self, build: Callable[..., Any]) -> None:
        self._build = build
        self._made: dict[tuple[Any, ...], Any] = {}

    def __call__(self, session: AsyncSession, *variant: Any) -> Any:
        name = session.get_bind().dialect.name
        made = self._made.get((name, *variant))
        if made is None:
            made = self._made[(name, *variant)] = self._build(_in_list_for(name), *variant)
        return made


def _in_list_for(dialect: str) -> Callable[[Any, str], Any]:
    if dialect != "postgresql":
        return lambda column, name: column.in_(bindparam(name, expanding=True))
    return lambda column, name: column == any_(bindparam(name, type_=ARRAY(column.type)))


def insert_statement(table: Table) -> Any:
    """`table`'s insert statement, built once."""
    return _statement(table, False)


_RETURNING: dict[Table, Any] = {}


def insert_returning_ids(table: Table) -> Any:
    """`table`'s insert statement returning the new rows' ids in the order of the rows given
    (SQLAlchemy's "insertmanyvalues" sorts them back), built once."""
    made = _RETURNING.get(table)
    if made is None:
        made = _RETURNING[table] = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return made


# per column of a step: its key, its bind processor, and the column when the rows leave it
# out (its Python-side default is used)
_Columns = list[tuple[str, Callable[[Any], Any] | None, Any]]
_SHAPES: dict[tuple[Any, ...], tuple[str, list[_Columns]]] = {}
_MAX_SHAPES = 256  # a bound, far above the combinations the intake writes


def _shape(dialect: Dialect, steps: Sequence[Step]) -> tuple[str, list[_Columns]]:
    """The statement of `steps` on PostgreSQL and, per step, its columns with their bind
    processors: built once per shape (which steps, tables and columns), as compiling the
    column types and finding their processors costs more than the statement's own rows."""
    shape = (dialect.name, *((type(s), s.table, tuple(s.rows[0])) for s in steps))
    made = _SHAPES.get(shape)
    if made is None:
        parts: list[str] = []
        columns: list[_Columns] = []
        for step in steps:
            given = list(step.rows[0])
            missing = []
            if isinstance(step, Insert):
                missing = [c for c in step.table.columns if c.default and c.key not in given]
            keys = given + [c.key for c in missing]
            first = 1 + sum(len(c) for c in columns)
            parts.append(_part(dialect, f"w{len(parts)}", step, keys, first))
            columns.append(
                [(key, _processor(dialect, step.table.c[key]), None) for key in given]
                + [(c.key, _processor(dialect, c), c) for c in missing]
            )
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        made = _SHAPES[shape] = ("WITH " + ", ".join(parts) + " SELECT 1", columns)
    return made


def _part(dialect: Dialect, name: str, step: Step, keys: list[str], first: int) -> str:
    """`step` as a ``WITH`` query named `name`, its columns' arrays parameters `first` on."""
    table = step.table
    arrays = [f"${first + i}::{_array_type(dialect, table.c[key])}" for i, key in enumerate(keys)]
    columns = ", ".join(_quote(dialect, k) for k in keys)
    aliases = ", ".join(f"c{i}" for i in range(len(keys)))
    source = f"unnest({', '.join(arrays)}) WITH ORDINALITY AS v({aliases}, n)"
    if isinstance(step, Insert):
        return (
            f"{name} AS (INSERT INTO {_quote(dialect, table.name)} ({columns})"
            f" SELECT {aliases} FROM {source} ORDER BY n)"
        )
    sets = ", ".join(f"{_quote(dialect, k)} = v.c{i}" for i, k in enumerate(keys) if k != "id")
    where = f"{_quote(dialect, table.name)}.id = v.c{keys.index('id')}"
    return (
        f"{name} AS (UPDATE {_quote(dialect, table.name)} SET {sets} FROM {source} WHERE {where})"
    )


def column_default(column: Any) -> Any:
    """The value of `column`'s Python-side default (None without one)."""
    default = column.default
    if default is None:
        return None
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps a no-argument callable to take a context
    return default.arg


def _processor(dialect: Dialect, column: Any) -> Callable[[Any], Any] | None:
    return cast(
        Callable[[Any], Any] | None, column.type.dialect_impl(dialect).bind_processor(dialect)
    )


def _array_type(dialect: Dialect, column: Any) -> str:
    kind: str = column.type.dialect_impl(dialect).compile(dialect=dialect)
    # a length in the element type means nothing to a cast of the array
    return kind.split("(")[0] + "[]"


def _quote(dialect: Dialect, name: str) -> str:
    return dialect.identifier_preparer.quote(name)


async def _raw(session: AsyncSession, sql: str, params: list[Any], *, fetch: bool = False) -> Any:
    """`sql` with the driver's positional parameters (``$1``), on the session's connection
    and in its transaction."""
    conn = await session.connection()
    result = await conn.exec_driver_sql(sql, tuple(params))
    return result.all() if fetch else None


__all__ = [
    "Insert",
    "PerDialect",
    "Step",
    "Update",
    "allocate_ids",
    "column_default",
    "insert_returning_ids",
    "insert_statement",
    "take_dirty",
    "write",
]

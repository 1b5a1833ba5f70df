"""Plain-row writes of a batch (`hypercare.store.bulk`, `hypercare.store.ids`), on both stores."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hypercare.store import bulk
from hypercare.store.base import utcnow
from hypercare.store.ids import adopt, insert_new
from hypercare.triage.models import Issue, TimelineEntry

ISSUES = cast(Table, Issue.__table__)
ENTRIES = cast(Table, TimelineEntry.__table__)


def _issue(title: str) -> Issue:
    now = utcnow()
    return Issue(title=title, priority="P3", labels=["a", "b"], created_at=now, updated_at=now)


async def test_insert_new_gives_ids_in_order_and_fills_defaults(session: AsyncSession) -> None:
    issues = [_issue(f"issue {i}") for i in range(4)]
    assert await insert_new(session, Issue, issues, write_locked=False) is True
    ids = [i.id for i in issues]
    assert ids == sorted(ids) and len(set(ids)) == 4
    # the column defaults were set on the objects, and the rows hold the same
    assert all(i.status == "new" and i.escalation_level == 0 for i in issues)
    rows = (await session.execute(select(Issue.id, Issue.title, Issue.labels))).all()
    assert sorted(rows) == [(i.id, i.title, ["a", "b"]) for i in issues]
    # more after a write (SQLite: the write lock is held, ids follow the highest)
    later = [_issue("later 1"), _issue("later 2")]
    await insert_new(session, Issue, later, write_locked=True)
    assert [i.id for i in later] == sorted(i.id for i in later)
    assert min(i.id for i in later) > max(ids)


async def test_adopted_objects_are_persistent_and_flush_their_changes(
    session: AsyncSession,
) -> None:
    (issue,) = issues = [_issue("adopted")]
    await insert_new(session, Issue, issues, write_locked=False)
    adopt(session, issues)
    assert issue in session and not session.new  # as if read back
    issue.priority = "P1"
    await session.flush()
    session.expunge_all()
    assert (await session.get(Issue, issue.id)).priority == "P1"  # type: ignore[union-attr]


async def test_write_inserts_and_updates_and_reads_back_the_same(
    session: AsyncSession,
) -> None:
    issues = [_issue("one"), _issue("two")]
    await insert_new(session, Issue, issues, write_locked=False)
    at = utcnow() - timedelta(minutes=5)
    await bulk.write(
        session,
        [
            bulk.Update(
                ISSUES,
                [
                    {"id": issues[0].id, "status": "acknowledged", "labels": ["x"]},
                    {"id": issues[1].id, "status": "resolved", "labels": []},
                ],
            ),
            bulk.Insert(
                ENTRIES,
                [
                    {
                        "issue_id": issue.id,
                        "at": at,
                        "actor": "bulk",
                        "kind": "note",
                        "text": f"note on {issue.title}",
                        "data": {"nested": [1, {"k": "v"}]},
                    }
                    for issue in issues
                ],
            ),
            bulk.Insert(ENTRIES, []),  # an empty step is left out
        ],
    )
    rows = (await session.execute(select(Issue.id, Issue.status, Issue.labels))).all()
    assert sorted(rows) == [
        (issues[0].id, "acknowledged", ["x"]),
        (issues[1].id, "resolved", []),
    ]
    entries = (
        await session.execute(
            select(
                TimelineEntry.issue_id, TimelineEntry.at, TimelineEntry.text, TimelineEntry.data
            ).order_by(TimelineEntry.id)
        )
    ).all()
    assert entries == [
        (issue.id, at, f"note on {issue.title}", {"nested": [1, {"k": "v"}]}) for issue in issues
    ]
    assert entries[0][1].utcoffset() == timedelta(0)  # read back timezone-aware, in UTC


async def test_take_dirty_moves_changes_out_of_the_flush(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    issues = [_issue("a"), _issue("b"), _issue("c")]
    await insert_new(session, Issue, issues, write_locked=False)
    adopt(session, issues)
    issues[0].priority = "P1"
    issues[1].priority = "P2"
    issues[2].status = "acknowledged"
    steps = bulk.take_dirty(session, Issue)
    by_columns = sorted(
        (tuple(sorted(s.rows[0])), sorted(r["id"] for r in s.rows))
        for s in steps
        if isinstance(s, bulk.Update)
    )
    assert by_columns == [
        (("id", "priority"), sorted([issues[0].id, issues[1].id])),
        (("id", "status"), [issues[2].id]),
    ]
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await session.flush()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    await bulk.write(session, steps)
    session.expunge_all()
    got = {i.id: (i.priority, i.status) for i in (await session.scalars(select(Issue))).all()}
    assert got == {
        issues[0].id: ("P1", "new"),
        issues[1].id: ("P2", "new"),
        issues[2].id: ("P3", "acknowledged"),
    }


async def test_allocate_ids_hands_out_increasing_ids_and_takes_the_locks(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    if engine.dialect.name != "postgresql":
        # SQLite has no sequences: its writer hands out ids under the write lock instead
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
            await bulk.allocate_ids(session, [(ISSUES, 1)])
        return
    issue_ids, entry_ids = await bulk.allocate_ids(
        session, [(ISSUES, 3), (ENTRIES, 2)], lock=["key-b", "key-a", "key-b"]
    )
    assert len(issue_ids) == 3 and issue_ids == sorted(set(issue_ids))
    assert len(entry_ids) == 2 and entry_ids == sorted(set(entry_ids))
    conn = await session.connection()
    held = await conn.exec_driver_sql(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    )
    assert held.scalar_one() == 2  # one per distinct key, until the transaction ends
    now = utcnow()
    rows = [
        {"id": i, "title": f"t{i}", "priority": "P3", "created_at": now, "updated_at": now}
        for i in issue_ids
    ]
    await bulk.write(session, [bulk.Insert(ISSUES, rows)])
    assert sorted(await session.scalars(select(Issue.id))) == issue_ids

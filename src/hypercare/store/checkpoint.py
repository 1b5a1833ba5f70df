"""SQLite WAL checkpoints off the commit path.

In WAL mode a commit appends pages to the write-ahead log; a checkpoint copies them back
into the database file and syncs it. By default SQLite checkpoints inside the commit that
takes the log past 1,000 pages (16 MiB at hypercare's 16 KiB pages), so every few hundred
intake commits one of them pays for copying and syncing the whole log: 15–20 ms on top of
a 1 ms commit, and everyone waiting on that commit waits with it. The console instead runs
`checkpoints` in the background: a PASSIVE checkpoint (which neither waits for nor blocks
readers and writers) on a pooled connection of its own, whose thread does the copying and
syncing while the writer goes on: every `CHECKPOINT_EVERY` seconds while writes come in,
every `CHECKPOINT_IDLE` seconds once a pass finds nothing new (`next_wait`).

The commit-time checkpoint stays as a fallback at `AUTOCHECKPOINT_PAGES` (set on every
connection by `hypercare.store.db`), and under a steady stream of writes it is what rewinds
the log: SQLite starts the log over only when a write transaction begins on a log that has
been copied back whole, and a background pass never sees that (the writer commits again
while it copies). So the log grows to the fallback's size, and the commit that reaches it
copies what the background passes have not, then the log starts over. Passes a tenth of a
second apart leave that commit little to copy: in an alert storm on SQLite (500 signals/s,
~4,400 log pages a second) passes a second apart left it ~5,000 pages, 40–50 ms in a commit
everyone waits on, and the exact-dedup intake's p99 was 45–53 ms instead of 16–22.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("hypercare.store")

CHECKPOINT_EVERY = 0.1  # seconds between background checkpoints while writes come in
CHECKPOINT_IDLE = 1.0  # seconds to the next pass after one that found nothing new
AUTOCHECKPOINT_PAGES = 10_000  # the commit-time fallback: 160 MiB of log at 16 KiB pages
_CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"
Pass = tuple[int, int, int]  # (busy, pages in the log, pages copied), as SQLite reports them


async def checkpoint(engine: AsyncEngine) -> Pass | None:
    """One PASSIVE checkpoint of a SQLite database: (busy, pages in the log, pages copied),
    as SQLite reports them; None on other databases."""
    if engine.dialect.name != "sqlite":
        return None
    async with engine.connect() as conn:
        busy, pages, copied = list((await conn.exec_driver_sql(_CHECKPOINT)).one())
    return int(busy), int(pages), int(copied)


def next_wait(before: Pass | None, now: Pass | None, every: float, idle: float) -> float:
    """Seconds until the next background pass: `every` while the log changes between passes
    (writes come in), `idle` once a pass finds it as the pass before left it, or fails."""
    return every if now is not None and now != before else idle


async def checkpoints(
    engine: AsyncEngine,
    stop: asyncio.Event,
    every: float = CHECKPOINT_EVERY,
    idle: float = CHECKPOINT_IDLE,
) -> None:
    """`checkpoint` until `stop` is set, `next_wait` apart (nothing on PostgreSQL)."""
    if engine.dialect.name != "sqlite":
        return
    before: Pass | None = None
    wait = every
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
            return
        try:
            done = await checkpoint(engine)
        except Exception:
            # a passing error (the disk, a locked file): the next pass, or the commit-time
            # fallback, checkpoints instead
            log.warning("WAL checkpoint failed", exc_info=True)
            done = None
        wait = next_wait(before, done, every, idle)
        before = done


__all__ = [
    "AUTOCHECKPOINT_PAGES",
    "CHECKPOINT_EVERY",
    "CHECKPOINT_IDLE",
    "Pass",
    "checkpoint",
    "checkpoints",
    "next_wait",
]

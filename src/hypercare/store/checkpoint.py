"""SQLite WAL checkpoints off the commit path.

In WAL mode a commit appends pages to the write-ahead log; a checkpoint copies them back
into the database file and syncs it. By default SQLite checkpoints inside the commit that
takes the log past 1,000 pages (16 MiB at hypercare's 16 KiB pages), so every few hundred
intake commits one of them pays for copying and syncing the whole log: 15–20 ms on top of
a 1 ms commit, and everyone waiting on that commit waits with it. The console instead runs
`checkpoints` in the background: a PASSIVE checkpoint (which neither waits for nor blocks
readers and writers) every `CHECKPOINT_EVERY` seconds on a pooled connection of its own,
whose thread does the copying and syncing while the writer goes on. The commit-time
checkpoint stays as a fallback at `AUTOCHECKPOINT_PAGES` (set on every connection by
`hypercare.store.db`), for processes that run no checkpointer and for a log that grows
faster than the background pass drains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("hypercare.store")

CHECKPOINT_EVERY = 1.0  # seconds between background checkpoints
AUTOCHECKPOINT_PAGES = 10_000  # the commit-time fallback: 160 MiB of log at 16 KiB pages
_CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"


async def checkpoint(engine: AsyncEngine) -> tuple[int, int, int] | None:
    """One PASSIVE checkpoint of a SQLite database: (busy, pages in the log, pages copied),
    as SQLite reports them; None on other databases."""
    if engine.dialect.name != "sqlite":
        return None
    async with engine.connect() as conn:
        busy, pages, copied = list((await conn.exec_driver_sql(_CHECKPOINT)).one())
    return int(busy), int(pages), int(copied)


async def checkpoints(
    engine: AsyncEngine, stop: asyncio.Event, every: float = CHECKPOINT_EVERY
) -> None:
    """`checkpoint` every `every` seconds until `stop` is set (nothing on PostgreSQL)."""
    if engine.dialect.name != "sqlite":
        return
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        try:
            await checkpoint(engine)
        except Exception:
            # a passing error (the disk, a locked file): the next pass, or the commit-time
            # fallback, checkpoints instead
            log.warning("WAL checkpoint failed", exc_info=True)


__all__ = ["AUTOCHECKPOINT_PAGES", "CHECKPOINT_EVERY", "checkpoint", "checkpoints"]

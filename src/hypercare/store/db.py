"""Engine and session factory; URL handling for the embedded SQLite default and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hypercare.errors import ConfigError
from hypercare.store import sqlite
from hypercare.store.checkpoint import AUTOCHECKPOINT_PAGES


def database_url(data_dir: str | Path, url: str | None, *, create: bool = True) -> str:
    """The async SQLAlchemy URL to use: `url` if given, else a SQLite file in `data_dir`.

    ``postgresql://`` and ``postgres://`` URLs get the asyncpg driver, ``sqlite://`` aiosqlite.
    With `create` (the default) a missing `data_dir` is made; without, nothing is touched.
    """
    if not url:
        path = Path(data_dir).resolve()
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path / 'hypercare.db'}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"invalid database URL {url!r} (expected postgresql://user@host:5432/db "
            "or sqlite:///path/to/file.db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise ConfigError(
        f"unsupported database {backend!r} in the database URL; use postgresql:// or sqlite://"
    )


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL points at; None for other databases and in-memory SQLite."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # 16 KiB pages for a new database (an existing one keeps its size): telemetry stores
    # call detail as blocks of hundreds of KiB, and every page is a WAL frame of its own
    # (two writes, and two more at checkpoint); the default 4 KiB quadruples those writes
    cur.execute("PRAGMA page_size=16384")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    # checkpoints run in the background (`hypercare.store.checkpoint`), not in a commit: the
    # commit-time one only when the log has grown this far
    cur.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # 64 MiB page cache (default 2 MiB): telemetry's indexes outgrow the default at once
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


# a pooled connection used this recently is handed out without a ping (see `_ping_when_idle`)
PING_IDLE_AFTER = 0.5


def create_engine(
    url: str, *, ping_idle_after: float = PING_IDLE_AFTER, **kwargs: Any
) -> AsyncEngine:
    if make_url(url).get_backend_name() == "sqlite" and "async_creator" not in kwargs:
        # one hand-off to the database thread per statement (see `store/sqlite.py`)
        kwargs["async_creator"] = sqlite.connector(url, kwargs.pop("connect_args", None))
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        _ping_when_idle(engine, ping_idle_after)
        event.listen(engine.sync_engine, "connect", _postgresql_settings)
    return engine


# Plans made for this connection's statements at every execution, with the tables' current
# sizes, never a generic plan reused from when they were small: PostgreSQL keeps the plans of
# prepared statements (the driver prepares every statement) and of its own foreign-key
# checks for a connection's lifetime, and picks a generic one after five executions; made
# while a table was near empty (a new database, a launch's first minutes) it scans the whole
# table, and it is made again only when the table's statistics change (autovacuum's ANALYZE,
# about a minute later at best). In an alert storm on a new database that turned each
# foreign-key check of the intake into a scan of a growing table: at 500 signals/s with 100
# open issues, exact dedup fell to 393 signals/s with a p99 of 5.3 s within 20 s (12 ms
# with this). Planning every execution costs ~1.4 ms of the server's time on the intake's
# largest statement: at 1,000 open issues the storm's p50 rose 0.4–0.6 ms, its p99 stayed.
PLAN_CACHE_MODE = "force_custom_plan"


def _postgresql_settings(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # a SET once per new connection, not a startup parameter (which PgBouncer refuses)
        cursor.execute(f"SET plan_cache_mode = {PLAN_CACHE_MODE}")
    finally:
        cursor.close()


def _ping_when_idle(engine: AsyncEngine, idle_after: float) -> None:
    """Check a pooled connection before handing it out only when it has sat idle for
    `idle_after` seconds (as connection pools such as HikariCP do), where SQLAlchemy's
    ``pool_pre_ping`` checks at every checkout: on asyncpg that check is three round trips
    (BEGIN, an empty query, ROLLBACK), about 0.3 ms for every transaction of a busy intake,
    while a connection used a moment ago is alive but for a server that went away in that
    moment (whose error then invalidates the pool, as any lost connection does). A connection
    that fails its check is replaced before it is handed out."""
    sync = engine.sync_engine

    def fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since < idle_after:
            return
        try:
            sync.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection failed its check: {exc}") from exc

    event.listen(sync, "connect", fresh)
    event.listen(sync, "checkin", fresh)
    event.listen(sync, "checkout", check)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid url>"

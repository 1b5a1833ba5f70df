"""Run the Alembic migrations programmatically on an async engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.errors import StoreUnavailable
from hypercare.store.db import redact_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "heads")


def _current(conn: Connection) -> set[str]:
    return set(MigrationContext.configure(conn).get_current_heads())


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision of every migration branch."""
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    except CommandError as exc:
        raise StoreUnavailable(
            f"cannot migrate the store at {redact_url(str(engine.url))}: {exc} "
            "(the database was migrated by a different hypercare version; "
            "use the matching version or a fresh database)"
        ) from exc
    except (OSError, OperationalError, DBAPIError) as exc:
        raise StoreUnavailable(
            f"cannot migrate the store at {redact_url(str(engine.url))}: {exc}"
        ) from exc


async def initialized(engine: AsyncEngine) -> bool:
    """Whether the database holds a hypercare store (some migration was applied to it)."""
    try:
        async with engine.connect() as conn:
            return bool(await conn.run_sync(_current))
    except (OSError, OperationalError, DBAPIError) as exc:
        raise StoreUnavailable(
            f"cannot reach the store at {redact_url(str(engine.url))}: {exc}"
        ) from exc


async def pending(engine: AsyncEngine) -> set[str]:
    """Heads of the migration scripts not yet applied to the database."""
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    return heads - current

"""Fixtures of the store tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite store, for what only SQLite does."""
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hc.db'}")
    await migrate(eng)
    yield eng
    await eng.dispose()

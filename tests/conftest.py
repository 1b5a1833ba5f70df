"""Shared fixtures: a fresh, migrated store per test on SQLite and on PostgreSQL.

PostgreSQL (127.0.0.1:5432, database `test`, trust auth) gives each test its own schema.
When the server is unreachable those tests skip with the reason, except under CI=true,
where an unreachable service is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hypercare.api.app import build_state, create_app
from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig
from hypercare.store.db import create_engine, session_factory
from hypercare.store.migrate import migrate
from tests.support import refused_port

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_URL = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/test"
IN_CI = os.environ.get("CI", "").lower() == "true"


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, under CI=true, fail) when a real peer service is not listening."""
    if service_reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: tests must not skip; start the service in .ci/run)")
    pytest.skip(f"{message}; start it to run these tests")


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole test (see `refused_port`)."""
    with refused_port() as port:
        yield port


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[AsyncEngine]:
    """A migrated, empty store: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        await migrate(eng)
        yield eng
        await eng.dispose()
        return
    async with pg_schema() as eng:
        await migrate(eng)
        yield eng


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[AsyncEngine]:
    """An engine whose connections work in a private PostgreSQL schema (empty, not migrated),
    dropped afterwards; skips (or under CI=true fails) when PostgreSQL is unreachable."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = create_engine(PG_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        yield eng
    finally:
        await eng.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with session_factory(engine)() as s:
        yield s
        await s.rollback()


@pytest.fixture
def config() -> HypercareConfig:
    return HypercareConfig()


@pytest.fixture
def state(config: HypercareConfig, engine: AsyncEngine) -> AppState:
    return build_state(config, engine)


TokenMaker = Callable[[Role], "asyncio.Future[str]"]


@pytest.fixture
async def tokens(state: AppState) -> dict[Role, str]:
    """One bearer token per role."""
    out = {}
    async with state.sessions() as s, s.begin():
        for role in Role:
            created = await auth_service.create_token(
                session=s, name=f"{role.value}-user", role=role
            )
            out[role] = created.token
    return out


@pytest.fixture
async def client(state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for the console API (no background timers)."""
    app = create_app(state, background=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

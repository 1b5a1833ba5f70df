"""What `hypercare up` runs: migrations, the bootstrap admin, then the console server."""

from __future__ import annotations

import logging
import os

import uvicorn

from hypercare.api.app import create_app
from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig
from hypercare.store.db import create_engine, redact_url
from hypercare.store.migrate import migrate
from hypercare.telemetry import nodes as telemetry_nodes

log = logging.getLogger("hypercare")


async def bootstrap_admin(state: AppState, admin_token: str | None) -> str | None:
    """Make sure an admin exists. Returns a newly generated token to print once, if any.

    With HYPERCARE_ADMIN_TOKEN set, that value becomes the bootstrap admin's token
    (nothing is printed); otherwise a random one is generated.
    """
    async with state.sessions() as session, session.begin():
        if await auth_service.has_admin(session=session):
            return None
        created = await auth_service.create_token(
            session=session, name="bootstrap-admin", role=Role.admin, token=admin_token
        )
    return None if admin_token else created.token


async def export_node_token(state: AppState, host: str, port: int) -> str:
    """Make sure the local gateway workers have a node token, and export it (with the
    console URL) as HYPERCARE_NODE_TOKEN / HYPERCARE_CONSOLE_URL for the processes this
    one starts; `hypercare.telemetry.shipper.shipper_from_env` reads them. A token given
    in HYPERCARE_NODE_TOKEN is kept; otherwise a fresh one replaces the previous one."""
    async with state.sessions() as session, session.begin():
        token = await telemetry_nodes.ensure_local_node_token(
            session=session, token=os.environ.get("HYPERCARE_NODE_TOKEN")
        )
    os.environ["HYPERCARE_NODE_TOKEN"] = token
    os.environ["HYPERCARE_CONSOLE_URL"] = telemetry_nodes.local_console_url(host, port)
    return token


async def serve(
    config: HypercareConfig, *, url: str, host: str, port: int, admin_token: str | None
) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = create_engine(url)
    try:
        await migrate(engine)
        state = AppState.build(config, engine)
        token = await bootstrap_admin(state, admin_token)
        await export_node_token(state, host, port)
        print(f"hypercare {host}:{port} — store {redact_url(url)}", flush=True)
        print(f"console: http://{host}:{port}/  API: http://{host}:{port}/api/v1", flush=True)
        if token:
            print(
                f"admin token (shown once, only its hash is stored): {token}",
                flush=True,
            )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(state),
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
                lifespan="on",
                server_header=False,
            )
        )
        await server.serve()
    finally:
        await engine.dispose()

"""Node tokens: the credential a gateway node ships telemetry with, and nothing else.

Node tokens live in their own table, apart from API tokens, so they can never pass a role
check and an API token (even an admin's) can never ingest. Only their SHA-256 is stored.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.auth.models import ApiToken
from hypercare.auth.rules import display_prefix, hash_token
from hypercare.errors import Conflict, Forbidden, Unauthenticated
from hypercare.store.base import utcnow
from hypercare.telemetry.models import NodeTokenCreated, TelemetryNode

NODE_PREFIX = "hcn_"
LOCAL_NODE = "local-gateway"


def new_node_token() -> str:
    return NODE_PREFIX + secrets.token_urlsafe(32)


async def create_node_token(
    *, session: AsyncSession, name: str, token: str | None = None
) -> NodeTokenCreated:
    token = token or new_node_token()
    digest = hash_token(token)
    if await session.scalar(select(TelemetryNode.id).where(TelemetryNode.token_hash == digest)):
        raise Conflict("a node token with this value already exists")
    row = TelemetryNode(name=name, token_hash=digest, prefix=display_prefix(token))
    session.add(row)
    await session.flush()
    return NodeTokenCreated(id=row.id, name=name, prefix=row.prefix, token=token)


async def ensure_local_node_token(*, session: AsyncSession, token: str | None = None) -> str:
    """The token `hypercare up` hands to its own gateway workers (HYPERCARE_NODE_TOKEN).

    With `token` given (e.g. from the environment), make sure it is a valid node token.
    Without, revoke the previous local tokens (their values were never stored, so they
    cannot be recovered) and create a fresh one.
    """
    if token:
        row = await session.scalar(
            select(TelemetryNode).where(TelemetryNode.token_hash == hash_token(token))
        )
        if row is None:
            await create_node_token(session=session, name=LOCAL_NODE, token=token)
        elif row.revoked:
            row.revoked = False
        return token
    await session.execute(
        update(TelemetryNode).where(TelemetryNode.name == LOCAL_NODE).values(revoked=True)
    )
    return (await create_node_token(session=session, name=LOCAL_NODE)).token


async def authenticate_node(*, session: AsyncSession, token: str) -> str:
    """The node's name for a valid node token; 403 for an API token, 401 otherwise."""
    digest = hash_token(token)
    row = await session.scalar(select(TelemetryNode).where(TelemetryNode.token_hash == digest))
    if row is not None and not row.revoked:
        now = utcnow()
        if row.last_seen_at is None or (now - row.last_seen_at).total_seconds() > 60:
            row.last_seen_at = now
        return row.name
    if await session.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest)):
        raise Forbidden(
            "telemetry ingest needs a node token, not an API token "
            "(create one with `hypercare telemetry node-token --name NODE`)"
        )
    raise Unauthenticated(
        "invalid or revoked node token (create one with "
        "`hypercare telemetry node-token --name NODE`)"
    )


def local_console_url(host: str, port: int) -> str:
    """The URL a gateway worker on this machine reaches the console at."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

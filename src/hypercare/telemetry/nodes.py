"""Node tokens: the credential a gateway node ships telemetry with, and nothing else.

Node tokens live in their own table, apart from API tokens, so they can never pass a role
check and an API token (even an admin's) can never ingest. Only their SHA-256 is stored.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

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


class VerifiedNodes:
    """Node tokens (by their SHA-256) found valid in the store in the last `ttl` seconds.

    A node sends a batch every 250 ms or so; looking its token up for each one costs a
    query per batch. A token revoked in the store is refused again at most `ttl` seconds
    later. Bounded: the oldest entries go when `most` is reached.
    """

    def __init__(
        self, ttl: float = 10.0, most: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.most = most
        self._clock = clock
        self._seen: dict[str, tuple[str, float]] = {}

    def get(self, digest: str) -> str | None:
        found = self._seen.get(digest)
        if found is None:
            return None
        if self._clock() - found[1] >= self.ttl:
            del self._seen[digest]
            return None
        return found[0]

    def put(self, digest: str, name: str) -> None:
        self._seen.pop(digest, None)
        while len(self._seen) >= self.most:
            del self._seen[next(iter(self._seen))]
        self._seen[digest] = (name, self._clock())


async def authenticate_node(
    *, session: AsyncSession, token: str, verified: VerifiedNodes | None = None
) -> str:
    """The node's name for a valid node token; 403 for an API token, 401 otherwise.
    With `verified`, a token found valid within its ttl is not looked up again."""
    digest = hash_token(token)
    if verified is not None and (name := verified.get(digest)) is not None:
        return name
    row = await session.scalar(select(TelemetryNode).where(TelemetryNode.token_hash == digest))
    if row is not None and not row.revoked:
        now = utcnow()
        if row.last_seen_at is None or (now - row.last_seen_at).total_seconds() > 60:
            row.last_seen_at = now
        if verified is not None:
            verified.put(digest, row.name)
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

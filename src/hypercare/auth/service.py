"""Token storage. Functions take a session and never commit: the caller owns the transaction."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.auth.models import ApiToken, Principal, TokenCreated, TokenRead
from hypercare.auth.rules import Role, display_prefix, hash_token, new_token
from hypercare.errors import Conflict, NotFound, Unauthenticated
from hypercare.store.base import utcnow

# last_used_at is a hint for people, not an audit log: refresh it at most this often
_TOUCH_EVERY = timedelta(minutes=1)


async def create_token(
    *, session: AsyncSession, name: str, role: Role, token: str | None = None
) -> TokenCreated:
    token = token or new_token()
    digest = hash_token(token)
    exists = await session.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest))
    if exists is not None:
        raise Conflict("a token with this value already exists")
    row = ApiToken(name=name, role=role.value, token_hash=digest, prefix=display_prefix(token))
    session.add(row)
    await session.flush()
    return TokenCreated(**_read(row).model_dump(), token=token)


async def authenticate(*, session: AsyncSession, token: str) -> Principal:
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked:
        raise Unauthenticated(
            "invalid or revoked API token (send 'Authorization: Bearer <token>'; "
            "create one with `hypercare token create`)"
        )
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        row.last_used_at = now
    return Principal(token_id=row.id, name=row.name, role=Role(row.role))


async def has_admin(*, session: AsyncSession) -> bool:
    count = await session.scalar(
        select(func.count())
        .select_from(ApiToken)
        .where(ApiToken.role == Role.admin.value, ApiToken.revoked.is_(False))
    )
    return bool(count)


async def list_tokens(*, session: AsyncSession) -> list[TokenRead]:
    rows = await session.scalars(select(ApiToken).order_by(ApiToken.id))
    return [_read(r) for r in rows]


async def revoke_token(*, session: AsyncSession, token_id: int) -> TokenRead:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token with id {token_id}")
    row.revoked = True
    return _read(row)


def _read(row: ApiToken) -> TokenRead:
    return TokenRead(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked=row.revoked,
    )

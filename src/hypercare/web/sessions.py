"""Console sessions in the store. Functions take a keyword-only session and never commit."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.auth.models import ApiToken, Principal
from hypercare.auth.rules import Role
from hypercare.store.base import utcnow
from hypercare.web.models import ConsoleSession
from hypercare.web.rules import hash_sid, new_secret


async def open_session(
    *, session: AsyncSession, principal: Principal, ttl: timedelta, now: datetime | None = None
) -> str:
    """Start a console session for `principal`; returns the session id for the cookie.

    Expired sessions are purged here, so the table stays small without a timer.
    """
    now = now or utcnow()
    await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    sid = new_secret()
    session.add(
        ConsoleSession(
            sid_hash=hash_sid(sid),
            token_id=principal.token_id,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    await session.flush()
    return sid


async def principal_for(
    *, session: AsyncSession, sid: str, now: datetime | None = None
) -> Principal | None:
    """Who holds session `sid`; None when unknown, expired, or its token was revoked."""
    now = now or utcnow()
    row = (
        await session.execute(
            select(ConsoleSession.expires_at, ApiToken.id, ApiToken.name, ApiToken.role)
            .join(ApiToken, ApiToken.id == ConsoleSession.token_id)
            .where(ConsoleSession.sid_hash == hash_sid(sid), ApiToken.revoked.is_(False))
        )
    ).first()
    if row is None or row.expires_at <= now:
        return None
    return Principal(token_id=row.id, name=row.name, role=Role(row.role))


async def close_session(*, session: AsyncSession, sid: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.sid_hash == hash_sid(sid)))

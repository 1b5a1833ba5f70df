"""FastAPI dependencies: the per-request transaction and role checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.models import Principal
from hypercare.auth.rules import Role, allows
from hypercare.errors import Forbidden, Unauthenticated


async def app_state(request: Request) -> AppState:
    # async, though it awaits nothing: FastAPI runs a sync dependency in a worker thread,
    # a thread hop on every request for one attribute read
    return _state(request)


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.hypercare
    return state


State = Annotated[AppState, Depends(app_state)]


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back when it
    raises. Services never commit on their own."""
    async with _state(request).sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


Db = Annotated[AsyncSession, Depends(db_session, scope="function")]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "missing API token: send 'Authorization: Bearer <token>' "
            "(create one with `hypercare token create --role viewer --name me`)"
        )
    return token.strip()


def require(role: Role) -> Callable[[Request, AsyncSession], Awaitable[Principal]]:
    """Dependency factory: the caller must hold `role` or a higher one."""

    async def check(request: Request, session: Db) -> Principal:
        cached: Principal | None = getattr(request.state, "principal", None)
        principal = cached or await auth_service.authenticate(
            session=session, token=bearer_token(request)
        )
        request.state.principal = principal
        if not allows(principal.role, role):
            raise Forbidden(
                f"this needs the {role.value!r} role or higher; "
                f"your token has {principal.role.value!r}",
                details={"needed": role.value, "held": principal.role.value},
            )
        return principal

    return check


Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Support = Annotated[Principal, Depends(require(Role.support))]
Responder = Annotated[Principal, Depends(require(Role.responder))]
Admin = Annotated[Principal, Depends(require(Role.admin))]

"""HTTP for API tokens (admin only)."""

from __future__ import annotations

from fastapi import APIRouter

from hypercare.api.deps import Admin, Db, Viewer
from hypercare.auth import service
from hypercare.auth.models import Principal, TokenCreate, TokenCreated, TokenRead
from hypercare.bounds import Id

router = APIRouter(prefix="/api/v1", tags=["tokens"])


@router.get("/tokens", response_model=list[TokenRead])
async def list_tokens(session: Db, _: Admin) -> list[TokenRead]:
    return await service.list_tokens(session=session)


@router.post("/tokens", response_model=TokenCreated, status_code=201)
async def create_token(session: Db, _: Admin, body: TokenCreate) -> TokenCreated:
    return await service.create_token(session=session, name=body.name, role=body.role)


@router.delete("/tokens/{token_id}", response_model=TokenRead)
async def revoke_token(session: Db, _: Admin, token_id: Id) -> TokenRead:
    return await service.revoke_token(session=session, token_id=token_id)


@router.get("/whoami", response_model=Principal)
async def whoami(who: Viewer) -> Principal:
    return who

"""Integrations: declared in the config file or created through the API (token hashed).

`authenticate` resolves an integration id plus the presented token to the adapter options,
comparing hashes only."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.auth.rules import hash_token, same_hash
from hypercare.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from hypercare.feedback.adapters import INTEGRATIONS
from hypercare.feedback.config import FeedbackConfig, IntegrationOptions
from hypercare.feedback.models import (
    Integration,
    IntegrationCreate,
    IntegrationCreated,
    IntegrationRead,
    IntegrationUpdate,
)

INTEGRATION_TOKEN_PREFIX = "hci_"


@dataclass(frozen=True, slots=True)
class Resolved:
    id: str
    type: str
    name: str
    options: IntegrationOptions


def intake_path(integration_id: str, kind: str) -> str:
    return f"/api/v1/integrations/{integration_id}/{INTEGRATIONS[kind].intake}"


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    return slug or "integration"


async def create(
    *, session: AsyncSession, config: FeedbackConfig, data: IntegrationCreate, actor: str, base: str
) -> IntegrationCreated:
    if INTEGRATIONS[data.type].needs_mapping and data.mapping is None:
        raise InvalidInput(
            "a 'webhook' integration needs a 'mapping' (at least {\"summary\": \"path.to.title\"})"
        )
    integration_id = f"{_slug(data.name)}-{secrets.token_hex(3)}"
    if any(i.id == integration_id for i in config.integrations):
        raise Conflict(f"integration id {integration_id!r} is taken by the config file; retry")
    token = INTEGRATION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    options: dict[str, Any] = {"sns_auto_confirm": data.sns_auto_confirm}
    if data.mapping is not None:
        options["mapping"] = data.mapping.model_dump(exclude_none=True)
    row = Integration(
        id=integration_id,
        type=data.type,
        name=data.name,
        token_hash=hash_token(token),
        prefix=token[: len(INTEGRATION_TOKEN_PREFIX) + 4],
        options=options,
        created_by=actor,
        disabled=False,
    )
    session.add(row)
    await session.flush()
    read = _read_row(row, base)
    return IntegrationCreated(
        **read.model_dump(), token=token, url_with_token=f"{read.url}?token={token}"
    )


async def list_all(
    *, session: AsyncSession, config: FeedbackConfig, base: str
) -> list[IntegrationRead]:
    out = [_read_config(i.id, i.type, i.name, base) for i in config.integrations]
    rows = await session.scalars(select(Integration).order_by(Integration.created_at))
    out.extend(_read_row(r, base) for r in rows)
    return out


async def update(
    *, session: AsyncSession, integration_id: str, data: IntegrationUpdate, base: str
) -> IntegrationRead:
    row = await _api_managed(session, integration_id, "change")
    changes = data.model_dump(exclude_unset=True)
    if "mapping" in changes:
        options = dict(row.options or {})
        if data.mapping is None:
            if INTEGRATIONS[row.type].needs_mapping:
                raise InvalidInput("a 'webhook' integration needs its 'mapping'; change it instead")
            options.pop("mapping", None)
        else:
            options["mapping"] = data.mapping.model_dump(exclude_none=True)
        row.options = options
    if data.disabled is not None and data.enabled is not None and data.disabled == data.enabled:
        raise InvalidInput("'enabled' and 'disabled' contradict each other; send one of them")
    if data.disabled is not None:
        row.disabled = data.disabled
    elif data.enabled is not None:
        row.disabled = not data.enabled
    return _read_row(row, base)


async def delete(*, session: AsyncSession, config: FeedbackConfig, integration_id: str) -> None:
    """Remove an API-managed integration: its URL answers 404 from now on. The signals it
    delivered stay (their channel keeps its id); a replay of one of its dead letters is
    refused with a message saying the integration no longer exists."""
    if any(i.id == integration_id for i in config.integrations):
        raise Conflict(
            f"integration {integration_id!r} is declared in the config file; remove it there"
        )
    row = await _api_managed(session, integration_id, "delete")
    await session.delete(row)
    await session.flush()


async def _api_managed(session: AsyncSession, integration_id: str, doing: str) -> Integration:
    row = await session.get(Integration, integration_id)
    if row is None:
        raise NotFound(
            f"no API-managed integration {integration_id!r} to {doing} "
            "(config-file ones change in the file)"
        )
    return row


async def authenticate(
    *, session: AsyncSession, config: FeedbackConfig, integration_id: str, token: str | None
) -> Resolved:
    """The integration behind `integration_id`, if `token` is its token."""
    if not token:
        raise Unauthenticated(
            "missing integration token: send 'Authorization: Bearer <token>' or add "
            "?token=<token> to the URL (the token was shown when the integration was created)"
        )
    given = hash_token(token)
    for declared in config.integrations:
        if declared.id == integration_id:
            if not same_hash(given, hash_token(declared.token)):
                raise Unauthenticated(f"wrong token for integration {integration_id!r}")
            options = IntegrationOptions.model_validate(
                declared.model_dump(include=set(IntegrationOptions.model_fields))
            )
            return Resolved(declared.id, declared.type, declared.name, options)
    row = await session.get(Integration, integration_id)
    if row is None:
        raise NotFound(f"no integration {integration_id!r}")
    if not same_hash(given, row.token_hash):
        raise Unauthenticated(f"wrong token for integration {integration_id!r}")
    if row.disabled:
        raise Forbidden(
            f"integration {integration_id!r} is disabled: this delivery was NOT stored. "
            "An admin can enable it again (console Integrations page, or PATCH "
            f'/api/v1/integrations/{integration_id} with {{"enabled": true}}); '
            "then resend it"
        )
    return Resolved(row.id, row.type, row.name, _options(row))


async def find(*, session: AsyncSession, config: FeedbackConfig, integration_id: str) -> Resolved:
    """The integration without authentication (replay of a stored delivery)."""
    for declared in config.integrations:
        if declared.id == integration_id:
            options = IntegrationOptions.model_validate(
                declared.model_dump(include=set(IntegrationOptions.model_fields))
            )
            return Resolved(declared.id, declared.type, declared.name, options)
    row = await session.get(Integration, integration_id)
    if row is None:
        raise NotFound(f"integration {integration_id!r} no longer exists")
    return Resolved(row.id, row.type, row.name, _options(row))


def _options(row: Integration) -> IntegrationOptions:
    return IntegrationOptions.model_validate(row.options or {})


def _read_row(row: Integration, base: str) -> IntegrationRead:
    return IntegrationRead(
        id=row.id,
        type=row.type,
        name=row.name,
        url=base.rstrip("/") + intake_path(row.id, row.type),
        prefix=row.prefix,
        managed_by="api",
        disabled=row.disabled,
        options=dict(row.options or {}),
    )


def _read_config(integration_id: str, kind: str, name: str, base: str) -> IntegrationRead:
    return IntegrationRead(
        id=integration_id,
        type=kind,
        name=name,
        url=base.rstrip("/") + intake_path(integration_id, kind),
        prefix=None,
        managed_by="config",
        disabled=False,
        options={},
    )

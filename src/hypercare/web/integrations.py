"""Integrations in the console (admins): their intake URLs, creating one (its token is shown
once), the last event each received, and a test event of the integration's type run
through the real adapter and intake. A test event is stored as a signal marked as a test
and opens no issue (see `hypercare.feedback.samples`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from hypercare.api.deps import Db, State
from hypercare.auth.rules import Role
from hypercare.feedback import integrations, samples, service
from hypercare.feedback.adapters import ADAPTERS, INTEGRATIONS
from hypercare.feedback.drafts import Rejected
from hypercare.feedback.models import IntegrationCreate, IntegrationCreated, IntegrationUpdate
from hypercare.feedback.views.common import base_url, cfg, store
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser, CsrfUser, PageError, SignedIn, form_text
from hypercare.web.registry import ConsolePart, NavItem

router = APIRouter(include_in_schema=False)


async def _page(
    request: Request,
    state: State,
    session: Db,
    user: SignedIn,
    *,
    created: IntegrationCreated | None = None,
    tested: dict[str, Any] | None = None,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    rows = await integrations.list_all(
        session=session, config=cfg(state), base=base_url(state, request)
    )
    last = await service.last_integration_signals(
        session=session, integration_ids=[i.id for i in rows]
    )
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        integrations=rows,
        last=last,
        types=[t for t, i in INTEGRATIONS.items() if not i.needs_mapping],
        samples=samples.KINDS,
        created=created,
        tested=tested,
        error=error,
        notice=notice,
    )
    return console.render(request, "integrations.html", ctx, status=status)


@router.get("/integrations")
async def integrations_page(
    request: Request, state: State, session: Db, user: ConsoleUser
) -> Response:
    user.require(Role.admin, "Managing integrations")
    return await _page(request, state, session, user)


@router.post("/integrations")
async def create_integration(
    request: Request, state: State, session: Db, user: CsrfUser
) -> Response:
    user.require(Role.admin, "Managing integrations")
    kind = await form_text(request, "type", max_length=40)
    name = await form_text(request, "name", max_length=120)
    try:
        data = IntegrationCreate.model_validate({"type": kind, "name": name})
    except ValidationError:
        return await _page(
            request,
            state,
            session,
            user,
            error="choose a type and give a name (at most 120 characters)",
            status=422,
        )
    created = await integrations.create(
        session=session,
        config=cfg(state),
        data=data,
        actor=user.principal.name,
        base=base_url(state, request),
    )
    return await _page(request, state, session, user, created=created, status=201)


@router.post("/integrations/{integration_id}/test")
async def send_test_event(
    request: Request, state: State, session: Db, user: CsrfUser, integration_id: str
) -> Response:
    user.require(Role.admin, "Sending a test event")
    resolved = await integrations.find(
        session=session, config=cfg(state), integration_id=integration_id
    )
    try:
        body, headers = samples.sample(resolved.type, resolved.options)
        drafts = ADAPTERS[resolved.type](body, headers, resolved.options)
    except Rejected as exc:
        raise PageError(422, f"no test event sent: {exc.reason}") from exc
    accepted = await store(
        state,
        session,
        request,
        channel=f"integration:{resolved.id}",
        source=resolved.type,
        body=body,
        drafts=drafts,
        integration_id=resolved.id,
        test=True,
    )
    signals = [await service.get_signal(session=session, signal_id=i) for i in accepted.signals]
    tested = {"integration": resolved, "signals": signals, "issues": accepted.issues}
    return await _page(request, state, session, user, tested=tested)


@router.post("/integrations/{integration_id}/enabled")
async def set_enabled(
    request: Request, state: State, session: Db, user: CsrfUser, integration_id: str
) -> Response:
    """Disable or enable an API-managed integration (form field `enabled`: true/false)."""
    user.require(Role.admin, "Managing integrations")
    enabled = await form_text(request, "enabled", max_length=5)
    if enabled not in ("true", "false"):
        raise PageError(422, "say whether to enable the integration (enabled=true or false)")
    changed = await integrations.update(
        session=session,
        integration_id=integration_id,
        data=IntegrationUpdate(enabled=enabled == "true"),
        base=base_url(state, request),
    )
    done = (
        f"“{changed.name}” is disabled: its URL refuses deliveries (403) until enabled again"
        if changed.disabled
        else f"“{changed.name}” is enabled: its URL takes deliveries again"
    )
    return await _page(request, state, session, user, notice=done)


@router.post("/integrations/{integration_id}/delete")
async def delete_integration(
    request: Request, state: State, session: Db, user: CsrfUser, integration_id: str
) -> Response:
    user.require(Role.admin, "Managing integrations")
    rows = await integrations.list_all(
        session=session, config=cfg(state), base=base_url(state, request)
    )
    name = next((i.name for i in rows if i.id == integration_id), integration_id)
    await integrations.delete(session=session, config=cfg(state), integration_id=integration_id)
    notice = f"“{name}” is deleted: its URL answers 404; the signals it delivered stay"
    return await _page(request, state, session, user, notice=notice)


PART = ConsolePart(
    name="integrations",
    router=router,
    nav=(
        NavItem(
            label="Integrations",
            href="/integrations",
            section="integrations",
            order=50,
            min_role=Role.admin,
        ),
    ),
)

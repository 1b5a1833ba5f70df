"""Integrations in the console (admins): their intake URLs, creating one (its token is shown
once), and a test event of the integration's type run through the real adapter and intake."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from hypercare.api.deps import Db, State
from hypercare.auth.rules import Role
from hypercare.feedback import integrations, service
from hypercare.feedback.adapters import ADAPTERS
from hypercare.feedback.drafts import Rejected
from hypercare.feedback.models import IntegrationCreate, IntegrationCreated
from hypercare.feedback.settings import INTEGRATION_TYPES
from hypercare.feedback.views.common import base_url, cfg, store
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser, CsrfUser, PageError, SignedIn, form_text
from hypercare.web.registry import ConsolePart, NavItem

router = APIRouter(include_in_schema=False)


def _alerts(source: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "version": "4",
        "status": "firing",
        "receiver": "hypercare",
        "alerts": [
            {
                "status": "firing",
                "fingerprint": f"hypercare-test-{uuid.uuid4().hex[:12]}",
                "labels": {"alertname": "HypercareTestAlert", "severity": "info", "test": "true"},
                "annotations": {
                    "summary": f"Test alert from the Hypercare console ({source})",
                    "description": "Sent by the 'send test event' button; safe to ignore.",
                },
                "startsAt": now,
            }
        ],
    }


def _pagerduty() -> dict[str, Any]:
    return {
        "routing_key": "test",
        "event_action": "trigger",
        "dedup_key": f"hypercare-test-{uuid.uuid4().hex[:12]}",
        "payload": {
            "summary": "Test event from the Hypercare console (pagerduty)",
            "source": "hypercare-console",
            "severity": "info",
            "timestamp": datetime.now(UTC).isoformat(),
        },
    }


# the sample event sent by "send test event", per integration type
SAMPLES = {
    "alertmanager": lambda: _alerts("alertmanager"),
    "grafana": lambda: _alerts("grafana"),
    "pagerduty": _pagerduty,
}


async def _page(
    request: Request,
    state: State,
    session: Db,
    user: SignedIn,
    *,
    created: IntegrationCreated | None = None,
    tested: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    rows = await integrations.list_all(
        session=session, config=cfg(state), base=base_url(state, request)
    )
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        integrations=rows,
        types=[t for t in INTEGRATION_TYPES if t != "webhook"],
        samples=SAMPLES,
        created=created,
        tested=tested,
        error=error,
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
    sample = SAMPLES.get(resolved.type)
    if sample is None:
        raise PageError(422, f"there is no sample event for {resolved.type} integrations")
    body = json.dumps(sample()).encode()
    try:
        drafts = ADAPTERS[resolved.type](body, {}, resolved.options)
    except Rejected as exc:
        raise PageError(422, f"the sample was rejected: {exc.reason}") from exc
    accepted = await store(
        state,
        session,
        request,
        channel=f"integration:{resolved.id}",
        source=resolved.type,
        body=body,
        drafts=drafts,
        integration_id=resolved.id,
    )
    signals = [await service.get_signal(session=session, signal_id=i) for i in accepted.signals]
    tested = {"integration": resolved, "signals": signals, "issues": accepted.issues}
    return await _page(request, state, session, user, tested=tested)


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

"""Helpers shared by the feedback views: storing a delivery, dead letters, rejections."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from hypercare.api.deps import Db
from hypercare.api.errors import error_body
from hypercare.api.state import AppState
from hypercare.feedback import service
from hypercare.feedback.drafts import Rejected, SignalDraft
from hypercare.feedback.intake import redact_headers
from hypercare.feedback.models import (
    IntakeAccepted,
)
from hypercare.feedback.settings import FeedbackConfig
from hypercare.store.base import utcnow

log = logging.getLogger("hypercare.feedback")


def cfg(state: AppState) -> FeedbackConfig:
    return state.config.feedback


def csv(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else ()


def base_url(state: AppState, request: Request) -> str:
    return cfg(state).public_url or str(request.base_url).rstrip("/")


async def store(
    state: AppState,
    session: Db,
    request: Request,
    *,
    channel: str,
    source: str,
    body: bytes,
    drafts: list[SignalDraft],
    integration_id: str | None = None,
    test: bool = False,
) -> IntakeAccepted:
    """Keep the delivery and store its drafts; a `test` delivery's drafts become test
    signals (no issue, see `hypercare.feedback.samples`)."""
    now = utcnow()
    delivery = service.record_delivery(
        session,
        channel=channel,
        source=source,
        headers=redact_headers(request.headers),
        body=body,
        outcome=service.ACCEPTED,
        now=now,
    )
    done = await service.ingest(
        session=session,
        matrix=state.matrix,
        priorities=cfg(state).priorities,
        drafts=drafts,
        attach=state.attach,
        delivery=delivery,
        integration_id=integration_id,
        now=now,
        test=test,
    )
    return IntakeAccepted(
        delivery_id=delivery.id, signals=[s.id for s in done.signals], issues=done.issue_ids
    )


def dead_letter(
    session: Db, request: Request, *, channel: str, source: str, body: bytes, reason: str
) -> None:
    service.record_delivery(
        session,
        channel=channel,
        source=source,
        headers=redact_headers(request.headers),
        body=body,
        outcome=service.REJECTED,
        reason=reason,
    )
    log.info("intake rejected on %s: %s", channel, reason)


def rejection(exc: Rejected, *, pagerduty: bool = False) -> JSONResponse:
    stored = " The delivery is kept at GET /api/v1/intake/rejected for replay."
    body: dict[str, Any] = error_body(
        "rejected_payload", exc.reason + (stored if exc.status < 500 else "")
    )
    status = exc.status
    if pagerduty:
        status = 400 if status == 422 else status
        body |= {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": [exc.reason],
        }
    return JSONResponse(body, status_code=status)

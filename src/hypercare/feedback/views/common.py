"""Helpers shared by the feedback views: storing a delivery, dead letters, rejections."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Db
from hypercare.api.errors import error_body
from hypercare.api.state import AppState
from hypercare.detection.citations import cites_calls
from hypercare.feedback import service
from hypercare.feedback.config import FeedbackConfig
from hypercare.feedback.drafts import Rejected, SignalDraft
from hypercare.feedback.intake import redact_headers
from hypercare.feedback.models import (
    IntakeAccepted,
)
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
    """Store one accepted delivery and its signals in the request's transaction; a `test`
    delivery's drafts become test signals (no issue, see `hypercare.feedback.samples`)."""
    await wait_for_cited_calls(state, drafts, test)
    accept = Accept(
        state, channel, source, redact_headers(request.headers), body, drafts, integration_id, test
    )
    return await accept(session)


async def store_grouped(
    state: AppState,
    request: Request,
    *,
    channel: str,
    source: str,
    body: bytes,
    drafts: list[SignalDraft],
    integration_id: str | None = None,
    test: bool = False,
) -> IntakeAccepted:
    """`store`, through the group-commit writer: the delivery shares a transaction (and an
    `ingest_many`) with other concurrent deliveries; this returns once it is committed."""
    await wait_for_cited_calls(state, drafts, test)
    accept = Accept(
        state,
        channel,
        source,
        redact_headers(request.headers),
        body,
        drafts,
        integration_id,
        test,
    )
    return await state.writer.run(accept)


async def wait_for_cited_calls(state: AppState, drafts: list[SignalDraft], test: bool) -> None:
    """Before a delivery citing calls is stored, let the call log catch up with the moment it
    arrived (bounded by `detection.cited_call_wait`; see `hypercare.detection.citations`)."""
    wait = state.config.detection.cited_call_wait.total_seconds()
    if test or wait <= 0 or not cites_calls(drafts):
        return
    if not await state.call_clock.wait_past(time.time(), wait):
        log.info("cited calls: the call log did not catch up within %.1f s", wait)


@dataclass(frozen=True, eq=False)
class Accept:
    """One accepted delivery to store: a work for the group-commit writer, which runs
    consecutive ones `together` (see `hypercare.store.writer`)."""

    state: AppState
    channel: str
    source: str
    headers: dict[str, str]
    body: bytes
    drafts: list[SignalDraft]
    integration_id: str | None
    test: bool = False
    now: datetime = field(default_factory=utcnow)  # received now, whenever it is stored

    async def __call__(self, session: AsyncSession) -> IntakeAccepted:
        (accepted,) = await self.together(session, [self])
        return accepted

    @staticmethod
    async def together(session: AsyncSession, accepts: Sequence[Accept]) -> list[IntakeAccepted]:
        state = accepts[0].state
        deliveries = [
            service.record_delivery(
                session,
                channel=a.channel,
                source=a.source,
                headers=a.headers,
                body=a.body,
                outcome=service.ACCEPTED,
                now=a.now,
            )
            for a in accepts
        ]
        done = await service.ingest_many(
            session=session,
            matrix=state.matrix,
            priorities=cfg(state).priorities,
            batches=[
                service.Batch(a.drafts, delivery, a.integration_id, a.now, a.test)
                for a, delivery in zip(accepts, deliveries, strict=True)
            ],
            attach=state.attach,
        )
        return [
            IntakeAccepted(
                delivery_id=delivery.id,
                signals=[s.id for s in ingested.signals],
                issues=ingested.issue_ids,
            )
            for delivery, ingested in zip(deliveries, done, strict=True)
        ]


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


async def dead_letter_grouped(
    state: AppState, request: Request, *, channel: str, source: str, body: bytes, reason: str
) -> None:
    """`dead_letter`, through the group-commit writer (committed when this returns)."""
    headers = redact_headers(request.headers)
    now = utcnow()

    async def work(session: AsyncSession) -> None:
        service.record_delivery(
            session,
            channel=channel,
            source=source,
            headers=headers,
            body=body,
            outcome=service.REJECTED,
            reason=reason,
            now=now,
        )

    await state.writer.run(work)
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

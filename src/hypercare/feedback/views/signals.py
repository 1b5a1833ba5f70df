"""Signals and dead letters over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from hypercare.api.deps import Db, Responder, State, Viewer
from hypercare.api.errors import error_body
from hypercare.bounds import Id, Instant, Offset
from hypercare.errors import InvalidInput, NotFound
from hypercare.feedback import integrations, samples, service, user
from hypercare.feedback.adapters import ADAPTERS
from hypercare.feedback.drafts import Rejected
from hypercare.feedback.models import (
    IntakeAccepted,
    RejectedPage,
    SignalPage,
    SignalRead,
)
from hypercare.feedback.views.common import cfg, csv
from hypercare.store.base import utcnow

router = APIRouter(prefix="/api/v1", tags=["feedback"])


# --- signals ------------------------------------------------------------------------------


@router.get("/signals", response_model=SignalPage)
async def list_signals(
    session: Db,
    _: Viewer,
    kind: Annotated[str | None, Query(description="comma list: user, system, team")] = None,
    source: Annotated[str | None, Query(description="comma list, e.g. alertmanager,ticket")] = None,
    issue: Annotated[Id | None, Query(description="signals attached to this issue")] = None,
    status: Annotated[str | None, Query(description="firing, resolved")] = None,
    from_: Annotated[
        Instant | None, Query(alias="from", description="received at or after")
    ] = None,
    to: Annotated[Instant | None, Query(description="received before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> SignalPage:
    kinds = csv(kind)
    bad = [k for k in kinds if k not in ("user", "system", "team")]
    if bad:
        raise InvalidInput(f"unknown kind {', '.join(bad)}; valid: user, system, team")
    statuses = csv(status)
    if any(s not in ("firing", "resolved") for s in statuses):
        raise InvalidInput("status must be firing and/or resolved")
    rows, total = await service.list_signals(
        session=session,
        filters=service.SignalFilter(
            kind=kinds, source=csv(source), issue_id=issue, status=statuses, start=from_, end=to
        ),
        limit=limit,
        offset=offset,
    )
    return SignalPage(
        items=[SignalRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/signals/{signal_id}", response_model=SignalRead)
async def get_signal(session: Db, _: Viewer, signal_id: Id) -> SignalRead:
    return SignalRead.model_validate(await service.get_signal(session=session, signal_id=signal_id))


@router.get("/signals/{signal_id}/delivery", response_class=Response)
async def signal_delivery(session: Db, _: Responder, signal_id: Id) -> Response:
    """The verbatim body of the HTTP delivery that carried this signal."""
    signal = await service.get_signal(session=session, signal_id=signal_id)
    if signal.delivery_id is None:
        raise NotFound(f"signal {signal_id} did not arrive through an HTTP delivery")
    delivery = await service.get_delivery(session=session, delivery_id=signal.delivery_id)
    media = (delivery.headers or {}).get("content-type", "application/octet-stream")
    return Response(delivery.body, media_type=media)


# --- dead letters ---------------------------------------------------------------------------


@router.get("/intake/rejected", response_model=RejectedPage)
async def list_rejected(
    session: Db,
    _: Responder,
    include_replayed: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> RejectedPage:
    rows, total = await service.list_rejected(
        session=session, include_replayed=include_replayed, limit=limit, offset=offset
    )
    return RejectedPage(items=[service.rejected_read(r) for r in rows], total=total)


@router.post("/intake/rejected/{delivery_id}/replay", response_model=IntakeAccepted)
async def replay(state: State, session: Db, _: Responder, delivery_id: Id) -> Response:
    """Run a dead letter through its adapter again (after the mapping was fixed)."""
    row = await service.get_delivery(session=session, delivery_id=delivery_id)
    if row.outcome != service.REJECTED:
        raise InvalidInput(
            f"delivery {delivery_id} is {row.outcome}, not rejected; nothing to replay"
        )
    integration_id: str | None = None
    try:
        if row.channel.startswith("integration:"):
            resolved = await integrations.find(
                session=session, config=cfg(state), integration_id=row.channel.split(":", 1)[1]
            )
            integration_id = resolved.id
            # signatures were checked when the delivery first arrived; their headers are redacted
            options = resolved.options.model_copy(update={"secret": None, "sns_certificate": None})
            drafts = ADAPTERS[resolved.type](row.body, row.headers or {}, options)
        elif row.channel == "feedback":
            drafts = user.api_drafts(row.body)
        elif row.channel.startswith("widget:"):
            widget, raw = user.parse_widget(row.body)
            drafts = user.widget_drafts(widget, raw)
        else:
            raise InvalidInput(f"deliveries on channel {row.channel!r} cannot be replayed")
    except Rejected as exc:
        row.reason = f"replay failed: {exc.reason}"
        return JSONResponse(
            error_body("rejected_payload", f"still rejected: {exc.reason}"), status_code=422
        )
    now = utcnow()
    test = samples.is_test(row.headers or {})
    done = await service.ingest(
        session=session,
        matrix=state.matrix,
        priorities=cfg(state).priorities,
        drafts=drafts,
        attach=state.attach,
        delivery=row,
        integration_id=integration_id,
        now=now,
        test=test,
    )
    row.outcome = service.REPLAYED
    row.replayed_at = now
    return JSONResponse(
        IntakeAccepted(
            delivery_id=row.id, signals=[s.id for s in done.signals], issues=done.issue_ids
        ).model_dump()
    )

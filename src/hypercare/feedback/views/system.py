"""System integrations: management and the per-integration intake endpoints."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hypercare.api.deps import Admin, Db, State
from hypercare.api.state import AppState
from hypercare.errors import NotFound
from hypercare.feedback import integrations, samples
from hypercare.feedback.adapters import ADAPTERS, INTEGRATIONS
from hypercare.feedback.drafts import Rejected, SignalDraft, parse_json
from hypercare.feedback.models import (
    IntakeAccepted,
    IntegrationCreate,
    IntegrationCreated,
    IntegrationRead,
    IntegrationUpdate,
)
from hypercare.feedback.views.common import (
    base_url,
    cfg,
    dead_letter_grouped,
    log,
    rejection,
    store_grouped,
)

router = APIRouter(prefix="/api/v1", tags=["feedback"])


# --- integrations ---------------------------------------------------------------------------


@router.post("/integrations", response_model=IntegrationCreated, status_code=201)
async def create_integration(
    state: State, session: Db, who: Admin, body: IntegrationCreate, request: Request
) -> IntegrationCreated:
    return await integrations.create(
        session=session, config=cfg(state), data=body, actor=who.name, base=base_url(state, request)
    )


@router.get("/integrations", response_model=list[IntegrationRead])
async def list_integrations(
    state: State, session: Db, _: Admin, request: Request
) -> list[IntegrationRead]:
    return await integrations.list_all(
        session=session, config=cfg(state), base=base_url(state, request)
    )


@router.patch("/integrations/{integration_id}", response_model=IntegrationRead)
async def update_integration(
    state: State,
    session: Db,
    _: Admin,
    integration_id: str,
    body: IntegrationUpdate,
    request: Request,
) -> IntegrationRead:
    return await integrations.update(
        session=session, integration_id=integration_id, data=body, base=base_url(state, request)
    )


@router.delete("/integrations/{integration_id}", status_code=204)
async def delete_integration(state: State, session: Db, _: Admin, integration_id: str) -> Response:
    await integrations.delete(session=session, config=cfg(state), integration_id=integration_id)
    return Response(status_code=204)


def _presented_token(request: Request, body: bytes, pagerduty: bool) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.query_params.get("token"):
        return request.query_params["token"]
    if pagerduty:
        try:
            data = parse_json(body)
        except Rejected:
            return None
        key = data.get("routing_key") if isinstance(data, dict) else None
        return key if isinstance(key, str) else None
    return None


async def _intake(state: AppState, request: Request, integration_id: str, *, pd: bool) -> Response:
    """One delivery to an integration. Its writes (the delivery, its signals, or the dead
    letter) go through the group-commit writer, so concurrent deliveries share a transaction;
    the answer is sent only after that transaction is committed."""
    body = await request.body()
    async with state.sessions() as session:  # reads only: the integration and its token
        resolved = await integrations.authenticate(
            session=session,
            config=cfg(state),
            integration_id=integration_id,
            token=_presented_token(request, body, pd),
        )
    if pd and INTEGRATIONS[resolved.type].intake != "v2/enqueue":
        raise NotFound(
            f"integration {integration_id!r} is {resolved.type}; post to its /webhook URL"
        )
    channel = f"integration:{resolved.id}"
    try:
        drafts = ADAPTERS[resolved.type](body, request.headers, resolved.options)
    except Rejected as exc:
        if exc.status in (401, 403) or exc.status >= 500:
            # authentication failures are not stored: they cannot be replayed honestly
            return rejection(exc, pagerduty=pd)
        await dead_letter_grouped(
            state, request, channel=channel, source=resolved.type, body=body, reason=exc.reason
        )
        return rejection(exc, pagerduty=pd)
    except Exception:
        log.exception("adapter %s failed on a delivery to %s", resolved.type, resolved.id)
        reason = (
            f"the {resolved.type} adapter could not read this payload (the console log has details)"
        )
        await dead_letter_grouped(
            state, request, channel=channel, source=resolved.type, body=body, reason=reason
        )
        return rejection(Rejected(reason), pagerduty=pd)
    drafts = [await _confirm_sns(d, resolved.options.sns_auto_confirm) for d in drafts]
    accepted = await store_grouped(
        state,
        request,
        channel=channel,
        source=resolved.type,
        body=body,
        drafts=drafts,
        integration_id=resolved.id,
        test=samples.is_test(request.headers),
    )
    if pd:
        key = drafts[0].labels.get("dedup_key", drafts[0].dedup_key) if drafts else ""
        return JSONResponse(
            {"status": "success", "message": "Event processed", "dedup_key": key}
            | accepted.model_dump(),
            status_code=202,
        )
    return JSONResponse(accepted.model_dump(), status_code=202)


async def _confirm_sns(draft: SignalDraft, auto: bool) -> SignalDraft:
    """Answer an SNS SubscriptionConfirmation when configured to (AWS URLs only)."""
    url = draft.labels.get("subscribe_url")
    if draft.labels.get("sns_type") != "SubscriptionConfirmation" or not url:
        return draft
    if not auto:
        return replace(draft, labels={**draft.labels, "confirmed": "no: sns_auto_confirm is off"})
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https" or not host.endswith(".amazonaws.com"):
        outcome = "no: SubscribeURL is not an https amazonaws.com URL"
    else:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.get(url)
            outcome = "yes" if r.status_code == 200 else f"no: HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            outcome = f"no: {type(exc).__name__}"
    return replace(draft, labels={**draft.labels, "confirmed": outcome})


@router.post(
    "/integrations/{integration_id}/webhook", status_code=202, response_model=IntakeAccepted
)
async def integration_webhook(state: State, request: Request, integration_id: str) -> Response:
    return await _intake(state, request, integration_id, pd=False)


@router.post("/integrations/{integration_id}/v2/enqueue", status_code=202)
async def integration_enqueue(state: State, request: Request, integration_id: str) -> Response:
    """PagerDuty Events API v2 compatible: the token may also be the ``routing_key``."""
    return await _intake(state, request, integration_id, pd=True)

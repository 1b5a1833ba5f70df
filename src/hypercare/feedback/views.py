"""HTTP for feedback intake: signals, integrations, dead letters, user and team feedback."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from hypercare.api.deps import Admin, Db, Responder, State, Support, Viewer
from hypercare.api.errors import error_body
from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role, allows
from hypercare.config import parse_duration
from hypercare.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from hypercare.feedback import handover as handover_service
from hypercare.feedback import integrations, scores, service, user
from hypercare.feedback.adapters import ADAPTERS
from hypercare.feedback.drafts import Rejected, SignalDraft, parse_json
from hypercare.feedback.intake import redact_headers, team_draft
from hypercare.feedback.models import (
    Handover,
    IntakeAccepted,
    IntegrationCreate,
    IntegrationCreated,
    IntegrationRead,
    IntegrationUpdate,
    RejectedPage,
    ScoreBucket,
    Scores,
    SignalPage,
    SignalRead,
    TeamNoteIn,
)
from hypercare.feedback.ratelimit import RateLimiter
from hypercare.feedback.settings import FeedbackConfig, WidgetKey
from hypercare.store.base import utcnow

log = logging.getLogger("hypercare.feedback")
router = APIRouter(prefix="/api/v1", tags=["feedback"])
public = APIRouter(tags=["feedback"])
WIDGET_JS = Path(__file__).with_name("widget.js")
MAX_BUCKETS = 1000
WIDGET_MAX_BYTES = 16 * 1024


def _cfg(state: AppState) -> FeedbackConfig:
    return state.config.feedback


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else ()


def _base(state: AppState, request: Request) -> str:
    return _cfg(state).public_url or str(request.base_url).rstrip("/")


async def _store(
    state: AppState,
    session: Db,
    request: Request,
    *,
    channel: str,
    source: str,
    body: bytes,
    drafts: list[SignalDraft],
    integration_id: str | None = None,
) -> IntakeAccepted:
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
        priorities=_cfg(state).priorities,
        drafts=drafts,
        delivery=delivery,
        integration_id=integration_id,
        now=now,
    )
    return IntakeAccepted(
        delivery_id=delivery.id, signals=[s.id for s in done.signals], issues=done.issue_ids
    )


def _dead_letter(
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


def _rejection(exc: Rejected, *, pagerduty: bool = False) -> JSONResponse:
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


# --- signals ------------------------------------------------------------------------------


@router.get("/signals", response_model=SignalPage)
async def list_signals(
    session: Db,
    _: Viewer,
    kind: Annotated[str | None, Query(description="comma list: user, system, team")] = None,
    source: Annotated[str | None, Query(description="comma list, e.g. alertmanager,ticket")] = None,
    issue: Annotated[int | None, Query(description="signals attached to this issue")] = None,
    status: Annotated[str | None, Query(description="firing, resolved")] = None,
    from_: Annotated[
        datetime | None, Query(alias="from", description="received at or after")
    ] = None,
    to: Annotated[datetime | None, Query(description="received before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> SignalPage:
    kinds = _csv(kind)
    bad = [k for k in kinds if k not in ("user", "system", "team")]
    if bad:
        raise InvalidInput(f"unknown kind {', '.join(bad)}; valid: user, system, team")
    statuses = _csv(status)
    if any(s not in ("firing", "resolved") for s in statuses):
        raise InvalidInput("status must be firing and/or resolved")
    for name, value in (("from", from_), ("to", to)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"'{name}' needs a time zone, e.g. 2026-11-27T10:00:00Z")
    rows, total = await service.list_signals(
        session=session,
        filters=service.SignalFilter(
            kind=kinds, source=_csv(source), issue_id=issue, status=statuses, start=from_, end=to
        ),
        limit=limit,
        offset=offset,
    )
    return SignalPage(
        items=[SignalRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/signals/{signal_id}", response_model=SignalRead)
async def get_signal(session: Db, _: Viewer, signal_id: int) -> SignalRead:
    return SignalRead.model_validate(await service.get_signal(session=session, signal_id=signal_id))


@router.get("/signals/{signal_id}/delivery", response_class=Response)
async def signal_delivery(session: Db, _: Responder, signal_id: int) -> Response:
    """The verbatim body of the HTTP delivery that carried this signal."""
    signal = await service.get_signal(session=session, signal_id=signal_id)
    if signal.delivery_id is None:
        raise NotFound(f"signal {signal_id} did not arrive through an HTTP delivery")
    delivery = await service.get_delivery(session=session, delivery_id=signal.delivery_id)
    media = (delivery.headers or {}).get("content-type", "application/octet-stream")
    return Response(delivery.body, media_type=media)


# --- integrations ---------------------------------------------------------------------------


@router.post("/integrations", response_model=IntegrationCreated, status_code=201)
async def create_integration(
    state: State, session: Db, who: Admin, body: IntegrationCreate, request: Request
) -> IntegrationCreated:
    return await integrations.create(
        session=session, config=_cfg(state), data=body, actor=who.name, base=_base(state, request)
    )


@router.get("/integrations", response_model=list[IntegrationRead])
async def list_integrations(
    state: State, session: Db, _: Admin, request: Request
) -> list[IntegrationRead]:
    return await integrations.list_all(
        session=session, config=_cfg(state), base=_base(state, request)
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
        session=session, integration_id=integration_id, data=body, base=_base(state, request)
    )


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


async def _intake(
    state: AppState, session: Db, request: Request, integration_id: str, *, pd: bool
) -> Response:
    body = await request.body()
    resolved = await integrations.authenticate(
        session=session,
        config=_cfg(state),
        integration_id=integration_id,
        token=_presented_token(request, body, pd),
    )
    if pd and resolved.type != "pagerduty":
        raise NotFound(
            f"integration {integration_id!r} is {resolved.type}; post to its /webhook URL"
        )
    channel = f"integration:{resolved.id}"
    try:
        drafts = ADAPTERS[resolved.type](body, request.headers, resolved.options)
    except Rejected as exc:
        if exc.status in (401, 403) or exc.status >= 500:
            # authentication failures are not stored: they cannot be replayed honestly
            return _rejection(exc, pagerduty=pd)
        _dead_letter(
            session, request, channel=channel, source=resolved.type, body=body, reason=exc.reason
        )
        return _rejection(exc, pagerduty=pd)
    except Exception:
        log.exception("adapter %s failed on a delivery to %s", resolved.type, resolved.id)
        reason = (
            f"the {resolved.type} adapter could not read this payload (the console log has details)"
        )
        _dead_letter(
            session, request, channel=channel, source=resolved.type, body=body, reason=reason
        )
        return _rejection(Rejected(reason), pagerduty=pd)
    drafts = [await _confirm_sns(d, resolved.options.sns_auto_confirm) for d in drafts]
    accepted = await _store(
        state,
        session,
        request,
        channel=channel,
        source=resolved.type,
        body=body,
        drafts=drafts,
        integration_id=resolved.id,
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
async def integration_webhook(
    state: State, session: Db, request: Request, integration_id: str
) -> Response:
    return await _intake(state, session, request, integration_id, pd=False)


@router.post("/integrations/{integration_id}/v2/enqueue", status_code=202)
async def integration_enqueue(
    state: State, session: Db, request: Request, integration_id: str
) -> Response:
    """PagerDuty Events API v2 compatible: the token may also be the ``routing_key``."""
    return await _intake(state, session, request, integration_id, pd=True)


# --- dead letters ---------------------------------------------------------------------------


@router.get("/intake/rejected", response_model=RejectedPage)
async def list_rejected(
    session: Db,
    _: Responder,
    include_replayed: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RejectedPage:
    rows, total = await service.list_rejected(
        session=session, include_replayed=include_replayed, limit=limit, offset=offset
    )
    return RejectedPage(items=[service.rejected_read(r) for r in rows], total=total)


@router.post("/intake/rejected/{delivery_id}/replay", response_model=IntakeAccepted)
async def replay(state: State, session: Db, _: Responder, delivery_id: int) -> Response:
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
                session=session, config=_cfg(state), integration_id=row.channel.split(":", 1)[1]
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
    done = await service.ingest(
        session=session,
        matrix=state.matrix,
        priorities=_cfg(state).priorities,
        drafts=drafts,
        delivery=row,
        integration_id=integration_id,
        now=now,
    )
    row.outcome = service.REPLAYED
    row.replayed_at = now
    return JSONResponse(
        IntakeAccepted(
            delivery_id=row.id, signals=[s.id for s in done.signals], issues=done.issue_ids
        ).model_dump()
    )


# --- user feedback --------------------------------------------------------------------------


def _widget_key(state: AppState, key: str) -> WidgetKey:
    for wk in _cfg(state).widget_keys:
        if wk.key == key:
            return wk
    raise Unauthenticated("unknown widget key")


def _cors(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


@router.options("/feedback", include_in_schema=False)
async def feedback_preflight(state: State, request: Request, key: str = "") -> Response:
    origin = request.headers.get("origin", "")
    wk = _widget_key(state, key) if key else None
    if wk is None or origin not in wk.origins:
        return JSONResponse(
            error_body("forbidden", "origin not allowed for this widget key"), status_code=403
        )
    return Response(
        status_code=204,
        headers=_cors(origin)
        | {
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "content-type",
            "Access-Control-Max-Age": "600",
        },
    )


@router.post("/feedback", status_code=202, response_model=IntakeAccepted)
async def post_feedback(state: State, session: Db, request: Request, key: str = "") -> Response:
    """Support tickets, bug reports, feature requests and NPS/CSAT answers (support role);
    or the public widget with ``?key=wk_...`` (origin-checked, rate-limited)."""
    body = await request.body()
    if request.headers.get("authorization") or not key:
        principal = await auth_service.authenticate(session=session, token=_bearer(request))
        if not allows(principal.role, Role.support):
            raise Forbidden("posting feedback needs the 'support' role or higher")
        try:
            drafts = user.api_drafts(body)
        except Rejected as exc:
            _dead_letter(
                session,
                request,
                channel="feedback",
                source="feedback",
                body=body,
                reason=exc.reason,
            )
            return _rejection(exc)
        accepted = await _store(
            state, session, request, channel="feedback", source="feedback", body=body, drafts=drafts
        )
        return JSONResponse(accepted.model_dump(), status_code=202)
    return await _widget_post(state, session, request, key, body)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "send 'Authorization: Bearer <token>' (support role), "
            "or ?key=<widget key> from the widget"
        )
    return token.strip()


async def _widget_post(
    state: AppState, session: Db, request: Request, key: str, body: bytes
) -> Response:
    wk = _widget_key(state, key)
    origin = request.headers.get("origin", "")
    if origin not in wk.origins:
        return JSONResponse(
            error_body("forbidden", "origin not allowed for this widget key"), status_code=403
        )
    headers = _cors(origin)
    limiter: RateLimiter = state.extras.setdefault(
        "feedback.widget_limiter",
        RateLimiter(_cfg(state).widget_rate_limit, _cfg(state).widget_rate_window.total_seconds()),
    )
    ip = request.client.host if request.client else "unknown"
    wait = limiter.allow(f"{wk.key}|{ip}")
    if wait is not None:
        return JSONResponse(
            error_body("rate_limited", "too much feedback from this address; try again shortly"),
            status_code=429,
            headers=headers | {"Retry-After": str(int(wait) + 1)},
        )
    if len(body) > WIDGET_MAX_BYTES:
        return JSONResponse(
            error_body(
                "payload_too_large", f"widget feedback is limited to {WIDGET_MAX_BYTES} bytes"
            ),
            status_code=413,
            headers=headers,
        )
    channel = f"widget:{wk.key}"
    try:
        widget, raw = user.parse_widget(body)
    except Rejected as exc:
        _dead_letter(
            session, request, channel=channel, source="widget", body=body, reason=exc.reason
        )
        return JSONResponse(
            error_body("invalid_input", exc.reason), status_code=422, headers=headers
        )
    if widget.website:
        log.info("widget honeypot filled from %s; dropped", ip)
        return JSONResponse({"status": "received"}, status_code=202, headers=headers)
    await _store(
        state,
        session,
        request,
        channel=channel,
        source="widget",
        body=body,
        drafts=user.widget_drafts(widget, raw),
    )
    return JSONResponse({"status": "received"}, status_code=202, headers=headers)


@router.get("/feedback/scores", response_model=Scores)
async def feedback_scores(
    session: Db,
    _: Viewer,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    step: Annotated[str, Query(description="bucket size: 1h, 1d, 1w")] = "1d",
) -> Scores:
    end = to or utcnow()
    start = from_ or end - timedelta(days=7)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("'from' and 'to' need a time zone, e.g. 2026-11-27T00:00:00Z")
    try:
        size = parse_duration(step)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if size <= timedelta(0) or start >= end:
        raise InvalidInput("need from < to and a positive step")
    if (end - start) / size > MAX_BUCKETS:
        raise InvalidInput(f"at most {MAX_BUCKETS} buckets; use a larger step")
    rows = await service.survey_scores(session=session, start=start, end=end)
    starts = scores.bucket_starts(start, end, size)
    nps_by: list[list[int]] = [[] for _ in starts]
    csat_by: list[list[int]] = [[] for _ in starts]
    for source, at, score in rows:
        (nps_by if source == "nps" else csat_by)[scores.bucket_index(at, start, size)].append(score)

    def bucket(at: datetime, n: list[int], c: list[int]) -> ScoreBucket:
        nt, ct = scores.nps(n), scores.csat(c)
        return ScoreBucket(
            start=at,
            nps=nt.score,
            nps_responses=nt.responses,
            promoters=nt.promoters,
            passives=nt.passives,
            detractors=nt.detractors,
            csat=ct.score,
            csat_responses=ct.responses,
            csat_satisfied=ct.satisfied,
        )

    return Scores(
        start=start,
        end=end,
        step_seconds=size.total_seconds(),
        total=bucket(start, [s for b in nps_by for s in b], [s for b in csat_by for s in b]),
        buckets=[bucket(at, n, c) for at, n, c in zip(starts, nps_by, csat_by, strict=True)],
    )


# --- team feedback --------------------------------------------------------------------------


@router.post("/team/notes", status_code=201, response_model=IntakeAccepted)
async def team_note(
    state: State, session: Db, who: Support, body: TeamNoteIn, request: Request
) -> IntakeAccepted:
    """Observations, stand-up notes and runbook/documentation updates."""
    draft = team_draft(body, author=who.name, raw=body.model_dump(mode="json"))
    return await _store(
        state,
        session,
        request,
        channel="team",
        source=body.type,
        body=body.model_dump_json().encode(),
        drafts=[draft],
    )


@router.get("/handovers/draft", response_model=Handover)
async def handover_draft(state: State, session: Db, _: Viewer) -> Handover:
    return await handover_service.draft(
        session=session, levels=[lv.level for lv in state.matrix.levels]
    )


@router.post("/handovers", status_code=201, response_model=IntakeAccepted)
async def post_handover(
    state: State, session: Db, who: Support, body: Handover, request: Request
) -> IntakeAccepted:
    """Record the (edited) handover as a team signal."""
    raw = body.model_dump(mode="json")
    draft = SignalDraft(
        kind="team",
        source="handover",
        summary=(body.shift or "shift handover")[:300],
        body=body.notes,
        dedup_key=f"team:handover:{utcnow().isoformat()}",
        raw=raw,
        user_ref=who.name,
        create_issue=False,
    )
    return await _store(
        state,
        session,
        request,
        channel="team",
        source="handover",
        body=body.model_dump_json().encode(),
        drafts=[draft],
    )


# --- widget script --------------------------------------------------------------------------


@public.get("/widget.js", include_in_schema=False)
async def widget_js() -> Response:
    return Response(
        WIDGET_JS.read_bytes(),
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )

"""User feedback: support intake, survey scores, the public widget and its script."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from hypercare.api.deps import Db, State, Viewer
from hypercare.api.errors import error_body
from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role, allows
from hypercare.bounds import Instant
from hypercare.configtypes import parse_duration
from hypercare.errors import Forbidden, InvalidInput, Unauthenticated
from hypercare.feedback import scores, service, user
from hypercare.feedback.config import WidgetKey
from hypercare.feedback.drafts import Rejected
from hypercare.feedback.models import (
    IntakeAccepted,
    ScoreBucket,
    Scores,
)
from hypercare.feedback.ratelimit import WidgetLimiter
from hypercare.feedback.views.common import cfg, dead_letter, log, rejection, store
from hypercare.store.base import utcnow

WIDGET_JS = Path(__file__).parents[1] / "widget.js"
MAX_BUCKETS = 1000
WIDGET_MAX_BYTES = 16 * 1024
router = APIRouter(prefix="/api/v1", tags=["feedback"])
public = APIRouter(tags=["feedback"])


# --- user feedback --------------------------------------------------------------------------


def _widget_key(state: AppState, key: str) -> WidgetKey:
    for wk in cfg(state).widget_keys:
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
            dead_letter(
                session,
                request,
                channel="feedback",
                source="feedback",
                body=body,
                reason=exc.reason,
            )
            return rejection(exc)
        accepted = await store(
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
    limiter = state.runtimes.setdefault(
        WidgetLimiter,
        lambda: WidgetLimiter(
            cfg(state).widget_rate_limit, cfg(state).widget_rate_window.total_seconds()
        ),
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
        dead_letter(
            session, request, channel=channel, source="widget", body=body, reason=exc.reason
        )
        return JSONResponse(
            error_body("invalid_input", exc.reason), status_code=422, headers=headers
        )
    if widget.website:
        log.info("widget honeypot filled from %s; dropped", ip)
        return JSONResponse({"status": "received"}, status_code=202, headers=headers)
    await store(
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
    from_: Annotated[Instant | None, Query(alias="from")] = None,
    to: Instant | None = None,
    step: Annotated[str, Query(description="bucket size: 1h, 1d, 1w")] = "1d",
) -> Scores:
    end = to or utcnow()
    start = from_ or end - timedelta(days=7)
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


# --- widget script --------------------------------------------------------------------------


@public.get("/widget.js", include_in_schema=False)
async def widget_js() -> Response:
    return Response(
        WIDGET_JS.read_bytes(),
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )

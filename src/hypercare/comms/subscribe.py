"""HTTP of status page subscribers: the public subscribe form, confirm and unsubscribe
links (no JavaScript; strict CSP), and the admin API (list, remove)."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from html import escape
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.deps import Admin, Db, State
from hypercare.api.state import AppState
from hypercare.bounds import Id, Offset
from hypercare.comms import rules, service
from hypercare.comms.jobs import public_base
from hypercare.comms.models import MAX_TARGET, SubscriberPage, SubscriberRead
from hypercare.errors import NotFound
from hypercare.response import jobs as response_jobs
from hypercare.response import service as response_service
from hypercare.response.channels import check_public_url
from hypercare.status.rules import TokenBucket
from hypercare.store.base import utcnow

public = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/api/v1", tags=["subscribers"])

CSP = (
    "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# a confirmation is sent again for the same address after this long at the earliest
RESEND_AFTER = timedelta(minutes=5)
_EMAIL = re.compile(r"^[^@\s<>,;\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


@dataclass
class SubscribeRuntime:
    limiter: TokenBucket | None = None
    made: list[int] = field(default_factory=list)


def _runtime(state: AppState) -> SubscribeRuntime:
    rt = state.runtimes.setdefault(SubscribeRuntime, SubscribeRuntime)
    if rt.limiter is None:
        rt.limiter = TokenBucket(state.config.comms.subscribers.per_minute)
    return rt


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title></head><body><main><h1>{escape(title)}</h1>"
        f"{body}</main></body></html>"
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": CSP,
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


def _enabled(state: AppState) -> None:
    if not state.config.comms.subscribers.enabled:
        raise NotFound("subscriptions are not enabled (comms.subscribers.enabled)")


def _form(state: AppState, error: str = "") -> str:
    boxes = "".join(
        f"<label><input type='checkbox' name='component' value='{escape(c.name)}'> "
        f"{escape(c.name)}</label><br>"
        for c in state.config.status.components
    )
    err = f"<p role='alert'><strong>{escape(error)}</strong></p>" if error else ""
    email = state.config.comms.subscribers.channel is not None
    return (
        f"{err}<form method='post' action='/status/subscribe'>"
        + (
            "<p><label>Email <input type='email' name='email' maxlength='254'></label></p>"
            if email
            else ""
        )
        + "<p><label>or a webhook URL <input type='url' name='url' maxlength='500'></label></p>"
        + (f"<fieldset><legend>Components (none: all)</legend>{boxes}</fieldset>" if boxes else "")
        + "<p><button type='submit'>Subscribe</button></p></form>"
        + "<p><a href='/status'>Back to the status page</a></p>"
    )


@public.get("/status/subscribe")
async def subscribe_form(state: State) -> Response:
    _enabled(state)
    return _page("Subscribe to updates", _form(state))


@public.post("/status/subscribe")
async def subscribe(request: Request, state: State, session: Db) -> Response:
    _enabled(state)
    cfg = state.config.comms.subscribers
    client = request.client.host if request.client else "-"
    wait = _runtime(state).limiter.allow(client, time.monotonic())  # type: ignore[union-attr]
    if wait is not None:
        resp = _page("Too many requests", "<p>Please try again in a minute.</p>", 429)
        resp.headers["Retry-After"] = str(max(1, round(wait)))
        return resp
    form = await request.form()
    email = str(form.get("email") or "").strip()
    url = str(form.get("url") or "").strip()
    known = {c.name for c in state.config.status.components}
    components = sorted({str(v) for v in form.getlist("component")})[:50]
    unknown = [c for c in components if c not in known]
    if unknown or bool(email) == bool(url) or len(email) > 254 or len(url) > MAX_TARGET:
        why = (
            f"unknown component {unknown[0]!r}"
            if unknown
            else "give either an email address or a webhook URL (not both), at most 500 characters"
        )
        return _page("Subscribe to updates", _form(state, why), 422)
    now = utcnow()
    if email:
        if cfg.channel is None or not _EMAIL.match(email):
            return _page("Subscribe to updates", _form(state, "that is not an email address"), 422)
        sub, pending = await service.subscribe(
            session=session, kind="email", target=email.lower(), components=components, now=now
        )
        if pending and not await service.confirmation_sent(
            session=session, channel=cfg.channel, subscriber_id=sub.id, since=now - RESEND_AFTER
        ):
            key = await response_service.signing_key(session=session, config=state.config.response)
            expires = int((now + cfg.confirm_ttl).timestamp())
            token = rules.sign_link(key, rules.CONFIRM, sub.id, expires)
            page_name = state.config.status.page.name
            message = rules.confirm_message(
                page=page_name, confirm_url=f"{public_base(state)}/status/confirm?token={token}"
            )
            message["to"] = [sub.target]
            session.add(
                service.message_delivery(
                    channel=f"{cfg.channel}>c{sub.id}.{uuid.uuid4().hex[:12]}",
                    channel_type="email",
                    recipient=sub.target,
                    message=message,
                    now=now,
                )
            )
            response_jobs.runtime(state).wake.set()
        return _page(
            "Check your inbox",
            "<p>We sent a link to confirm the subscription. Nothing is sent before you "
            "confirm.</p>",
        )
    resolve = response_jobs.runtime(state).resolve
    why_not = await check_public_url(url, state.config.response.allow_private, resolve)
    if why_not:
        return _page("Subscribe to updates", _form(state, f"webhook URL refused: {why_not}"), 422)
    await service.subscribe(
        session=session, kind="webhook", target=url, components=components, now=now
    )
    return _page("Subscribed", "<p>The webhook will receive incident and maintenance updates.</p>")


def _broken_link(exc: Exception) -> Response:
    return _page("This link does not work", f"<p>{escape(str(exc))}</p>", 400)


async def _unsubscriber(state: AppState, session: AsyncSession, token: str) -> int | Response:
    """The subscriber an unsubscribe link names, or the page saying why it does not work."""
    _enabled(state)
    key = await response_service.signing_key(session=session, config=state.config.response)
    try:
        return rules.check_link(key, rules.UNSUBSCRIBE, token, time.time())
    except rules.LinkError as exc:
        return _broken_link(exc)


@public.get("/status/confirm")
async def confirm(
    state: State, session: Db, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    _enabled(state)
    key = await response_service.signing_key(session=session, config=state.config.response)
    try:
        sid = rules.check_link(key, rules.CONFIRM, token, time.time())
        sub = await service.confirm(session=session, subscriber_id=sid, now=utcnow())
    except (rules.LinkError, NotFound) as exc:
        return _broken_link(exc)
    unsub = rules.sign_link(key, rules.UNSUBSCRIBE, sub.id, 0)
    return _page(
        "Subscription confirmed",
        f"<p>{escape(sub.target)} will be told about incidents and maintenance.</p>"
        f"<p><a href='/status/unsubscribe?token={escape(unsub)}'>Unsubscribe</a></p>",
    )


@public.get("/status/unsubscribe")
async def unsubscribe_form(
    state: State, session: Db, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    checked = await _unsubscriber(state, session, token)
    if isinstance(checked, Response):
        return checked
    return _page(
        "Unsubscribe",
        f"<form method='post' action='/status/unsubscribe?token={escape(token)}'>"
        "<button type='submit'>Unsubscribe</button></form>",
    )


@public.post("/status/unsubscribe")
async def unsubscribe(
    state: State, session: Db, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """One click (RFC 8058: mail clients POST ``List-Unsubscribe=One-Click`` here)."""
    sid = await _unsubscriber(state, session, token)
    if isinstance(sid, Response):
        return sid
    await service.unsubscribe(session=session, subscriber_id=sid)
    return _page("Unsubscribed", "<p>Nothing more will be sent.</p>")


@router.get("/subscribers", response_model=SubscriberPage)
async def list_subscribers(
    session: Db,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> SubscriberPage:
    rows, total = await service.list_subscribers(session=session, limit=limit, offset=offset)
    return SubscriberPage(
        items=[SubscriberRead.model_validate(r, from_attributes=True) for r in rows], total=total
    )


@router.delete("/subscribers/{subscriber_id}", status_code=204)
async def remove_subscriber(session: Db, _: Admin, subscriber_id: Id) -> Response:
    if not await service.unsubscribe(session=session, subscriber_id=subscriber_id):
        raise NotFound(f"no subscriber with id {subscriber_id}")
    return Response(status_code=204)

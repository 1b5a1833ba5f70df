"""HTTP for response: the notification log, replay, acknowledgement (API and signed link)."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from html import escape
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from hypercare.api.deps import Admin, Db, Responder, State, Viewer
from hypercare.bounds import Id
from hypercare.errors import InvalidInput, NotFound
from hypercare.response import jobs, rules, service
from hypercare.response.channels import (
    Notifiers,
    Outbound,
    check_public_url,
    new_client,
    recipient,
)
from hypercare.response.config import ChannelConfig
from hypercare.response.models import (
    AcknowledgeRequest,
    ChannelRead,
    DeliveryRead,
    TestRequest,
    TestResult,
)
from hypercare.store.base import utcnow
from hypercare.triage import service as triage_service
from hypercare.triage.models import IssueRead

router = APIRouter(prefix="/api/v1", tags=["response"])
# the one-click acknowledgement pages: public (the signed token is the credential)
links = APIRouter(include_in_schema=False)


@router.get("/issues/{issue_id}/notifications", response_model=list[DeliveryRead])
async def issue_notifications(
    session: Db,
    _: Viewer,
    issue_id: Id,
    limit: Annotated[int, Query(ge=1, le=1000, description="the newest this many")] = 200,
) -> list[DeliveryRead]:
    """The deliveries made for the issue, oldest first: channel, recipient, state, attempts
    and times."""
    rows = await service.list_deliveries(session=session, issue_id=issue_id, limit=limit)
    return [service.to_read(d) for d in rows]


@router.post("/notifications/{delivery_id}/replay", response_model=DeliveryRead)
async def replay_notification(
    state: State, session: Db, who: Responder, delivery_id: Id
) -> DeliveryRead:
    """Send a delivery again, whatever its state (a pending one is refused: it is on its way)."""
    delivery = await service.replay(
        session=session, delivery_id=delivery_id, actor=who.name, now=utcnow()
    )
    jobs.runtime(state).wake.set()
    return service.to_read(delivery)


@router.post("/issues/{issue_id}/acknowledge", response_model=IssueRead)
async def acknowledge_issue(
    state: State,
    session: Db,
    who: Responder,
    issue_id: Id,
    body: AcknowledgeRequest | None = None,
) -> IssueRead:
    """Stamp `acknowledged_at` (the first time; later calls change nothing) and record it on
    the timeline; this is what stops escalation."""
    issue, _ = await service.acknowledge(
        session=session,
        issue_id=issue_id,
        actor=who.name,
        via="api",
        note=body.note if body else None,
        now=utcnow(),
    )
    return triage_service.to_read(issue, state.matrix)


@router.get("/response/channels", response_model=list[ChannelRead])
async def channels(state: State, session: Db, _: Admin) -> list[ChannelRead]:
    """The configured channels. A webhook channel whose config gives no `secret` signs with
    one Hypercare generated: it is shown here in clear once, the first time it is read."""
    cfg = state.config.response
    out = []
    for ch in cfg.channels:
        read = ChannelRead(
            name=ch.name, type=ch.type, recipient=recipient(ch), signed=ch.type == "webhook"
        )
        if ch.type == "webhook" and not ch.secret:
            key = await service.signing_key(session=session, config=cfg)
            secret, revealed = await service.reveal_secret(
                session=session, channel=ch.name, key=key, now=utcnow()
            )
            read = read.model_copy(update={"secret": secret, "secret_revealed_at": revealed})
        out.append(read)
    return out


@router.post("/response/test", response_model=TestResult)
async def send_test(state: State, _: Admin, body: TestRequest) -> TestResult:
    """Send a test message now (not a delivery: nothing is stored or retried)."""
    cfg = state.config.response
    rt = jobs.runtime(state)
    if (body.channel is None) == (body.url is None):
        raise InvalidInput("give either `channel` (a configured name) or `url`")
    if body.channel is not None:
        channel = cfg.channel(body.channel)
        if channel is None:
            known = ", ".join(c.name for c in cfg.channels) or "none configured"
            raise NotFound(f"no channel {body.channel!r} (configured: {known})")
        secret = rt.secrets.get(channel.name) or channel.secret
    else:
        url = body.url or ""
        refusal = await check_public_url(url, cfg.allow_private, rt.resolve)
        if refusal:
            raise InvalidInput(f"will not call {url!r}: {refusal}", details={"field": "url"})
        channel = ChannelConfig(name="test", type="webhook", url=url)
        secret = None
    base = jobs.base_url(state)
    message = {
        "event": "test",
        "entry_id": 0,
        "issue_id": 0,
        "title": "Hypercare test message",
        "priority": "P4",
        "status": "new",
        "labels": [],
        "text": "A test from Hypercare: this channel is reachable.",
        "at": utcnow().isoformat(),
        "issue_url": f"{base}/",
        "ack_url": f"{base}/",
    }
    outbound = Outbound(
        delivery_id=0,
        channel=channel,
        message=message,
        idempotency_key=uuid.uuid4().hex,
        secret=secret,
    )
    if rt.notifiers is not None:
        outcome = await rt.notifiers.for_channel(channel).send(outbound)
    else:
        async with new_client() as client:
            outcome = await Notifiers.standard(client).for_channel(channel).send(outbound)
    return TestResult(ok=outcome.ok, status=outcome.status, error=outcome.error)


# --- the signed acknowledgement link ------------------------------------------------------

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}"
    "button{font-size:1rem;padding:.6rem 1.4rem;cursor:pointer}.muted{color:#555}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# no scripts at all; the only form posts back to this origin
LINK_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)} · Hypercare</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=LINK_HEADERS)


_REFUSALS = {
    rules.AckRefusal.malformed: "This acknowledgement link is not valid. Copy the whole link "
    "from the message, or acknowledge the issue in the console.",
    rules.AckRefusal.tampered: "This acknowledgement link is not valid: it was changed or "
    "belongs to another Hypercare. Acknowledge the issue in the console instead.",
    rules.AckRefusal.expired: "This acknowledgement link has expired. Acknowledge the issue "
    "in the console instead.",
}


async def _verify(state: State, session: Db, token: str) -> rules.AckClaim | HTMLResponse:
    rt = jobs.runtime(state)
    key = rt.key or await service.signing_key(session=session, config=state.config.response)
    claim = rules.verify_ack(key, token, int(time.time()))
    if isinstance(claim, rules.AckRefusal):
        return _page("Link not valid", f"<p>{escape(_REFUSALS[claim])}</p>", status=400)
    return claim


@links.get("/ack/{token}", response_class=HTMLResponse)
async def ack_page(state: State, session: Db, token: str) -> HTMLResponse:
    """The confirmation page. Opening the link changes nothing (mail scanners fetch links);
    only the button's POST acknowledges."""
    claim = await _verify(state, session, token)
    if isinstance(claim, HTMLResponse):
        return claim
    try:
        issue = await triage_service.get_issue(session=session, issue_id=claim.issue_id)
    except NotFound:
        return _page("Issue not found", "<p>This issue no longer exists.</p>", status=404)
    done = (
        f"<p class='muted'>Already acknowledged at {escape(issue.acknowledged_at.isoformat())}.</p>"
        if issue.acknowledged_at
        else ""
    )
    return _page(
        f"Acknowledge #{issue.id}?",
        f"<p><strong>[{escape(issue.priority)}] {escape(issue.title)}</strong></p>{done}"
        f"<form method='post' action='/ack/{escape(token)}'>"
        "<button type='submit'>Acknowledge</button></form>"
        f"<p class='muted'><a href='/issues/{issue.id}'>Open the issue</a></p>",
    )


@links.post("/ack/{token}", response_class=HTMLResponse)
async def ack_confirm(request: Request, state: State, session: Db, token: str) -> HTMLResponse:
    # the token in the path is the credential; a browser's cross-site POST is still refused
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site not in (None, "same-origin", "none"):
        return _page("Not acknowledged", "<p>Use the button on the page itself.</p>", 403)
    claim = await _verify(state, session, token)
    if isinstance(claim, HTMLResponse):
        return claim
    try:
        used = await service.use_ack_link(session=session, claim=claim, now=utcnow())
    except NotFound:
        return _page("Issue not found", "<p>This issue no longer exists.</p>", status=404)
    if used is None:
        return _page(
            "Link already used",
            "<p>This link has been used already; each one works once. "
            f"<a href='/issues/{claim.issue_id}'>Open the issue</a>.</p>",
            status=409,
        )
    issue, fresh = used
    text = "Acknowledged. Escalation stops here." if fresh else "It was already acknowledged."
    return _page(
        f"#{issue.id} acknowledged",
        f"<p>{escape(text)}</p><p><a href='/issues/{issue.id}'>Open the issue</a></p>",
    )

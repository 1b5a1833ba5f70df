"""The console's stakeholder digest (`/digest`): the digest as it would be sent, and the
deliveries of the digests sent (their state; a dead one can be replayed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from hypercare.api.deps import Db, State
from hypercare.comms import digest, service
from hypercare.comms.jobs import build_digest
from hypercare.response import service as response_service
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser
from hypercare.web.registry import ConsolePart, NavItem

router = APIRouter(include_in_schema=False)

SENT_ROWS = 20  # the newest digest deliveries shown


@router.get("/digest")
async def digest_page(
    request: Request,
    state: State,
    session: Db,
    user: ConsoleUser,
    hours: Annotated[int | None, Query(ge=1, le=744)] = None,
) -> Response:
    found = await build_digest(session, state, hours)
    sent, _ = await response_service.find_deliveries(
        session=session, event=service.DIGEST_EVENT, no_issue=True, limit=SENT_ROWS
    )
    title = state.config.comms.digest.title
    console = console_of(request)
    ctx = console.context(
        request,
        user.principal,
        user.csrf,
        hours=hours,
        # every text in it is escaped by `digest.to_html`
        preview=Markup(digest.to_html(found, title)),
        markdown=digest.to_markdown(found, title),
        channels=state.config.comms.digest.channels,
        counts=await service.digest_outcomes(session=session),
        deliveries=[response_service.to_read(d) for d in sent],
        sent_rows=SENT_ROWS,
    )
    return console.render(request, "digest.html", ctx)


PART = ConsolePart(
    name="digest",
    router=router,
    nav=(NavItem(label="Digest", href="/digest", section="digest", order=44),),
)

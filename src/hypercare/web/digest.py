"""The console's stakeholder digest preview (`/digest`): the digest as it would be sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from hypercare.api.deps import Db, State
from hypercare.comms import digest
from hypercare.comms.jobs import build_digest
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser
from hypercare.web.registry import ConsolePart, NavItem

router = APIRouter(include_in_schema=False)


@router.get("/digest")
async def digest_page(
    request: Request,
    state: State,
    session: Db,
    user: ConsoleUser,
    hours: Annotated[int | None, Query(ge=1, le=744)] = None,
) -> Response:
    found = await build_digest(session, state, hours)
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
    )
    return console.render(request, "digest.html", ctx)


PART = ConsolePart(
    name="digest",
    router=router,
    nav=(NavItem(label="Digest", href="/digest", section="digest", order=44),),
)

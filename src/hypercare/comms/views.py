"""HTTP of outside messages and the stakeholder digest, under /api/v1."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from hypercare.api.deps import Db, State, Viewer
from hypercare.comms import digest
from hypercare.comms.jobs import build_digest

router = APIRouter(prefix="/api/v1", tags=["digest"])


@router.get(
    "/digest",
    responses={200: {"content": {"text/markdown": {}, "text/html": {}}}},
)
async def digest_preview(
    state: State,
    session: Db,
    _: Viewer,
    hours: Annotated[int | None, Query(ge=1, le=744, description="period; default config")] = None,
    format: Annotated[Literal["json", "markdown", "html"], Query()] = "json",
) -> Response:
    """The stakeholder digest as of now: open issues by priority and SLA state, median
    MTTD/MTTA/MTTR, top failing APIs, ticket volume and NPS/CSAT with their trends."""
    found = await build_digest(session, state, hours)
    title = state.config.comms.digest.title
    if format == "markdown":
        return PlainTextResponse(
            digest.to_markdown(found, title), media_type="text/markdown; charset=utf-8"
        )
    if format == "html":
        return HTMLResponse(
            digest.to_html(found, title), headers={"Content-Security-Policy": "default-src 'none'"}
        )
    return JSONResponse(found)

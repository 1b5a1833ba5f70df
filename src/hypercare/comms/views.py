"""HTTP of outside messages and the stakeholder digest, under /api/v1."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from hypercare.api.deps import Db, State, Viewer
from hypercare.api.state import AppState
from hypercare.comms import digest, service
from hypercare.store.base import utcnow
from hypercare.telemetry.jobs import live_of

router = APIRouter(prefix="/api/v1", tags=["digest"])


async def build_digest(session: Any, state: AppState, hours: int | None) -> dict[str, Any]:
    """The digest of the last `hours` (default `comms.digest.period`) up to now."""
    cfg = state.config.comms.digest
    end = utcnow()
    period = timedelta(hours=hours) if hours else cfg.period
    facts = await service.digest_facts(
        session=session,
        live=live_of(state),
        levels=[lv.level for lv in state.matrix.levels],
        start=end - period,
        end=end,
        timezone=cfg.timezone,
    )
    found = digest.digest(facts)
    zone = ZoneInfo(cfg.timezone)
    found["period"]["start"] = facts.start.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    found["period"]["end"] = facts.end.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return found


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

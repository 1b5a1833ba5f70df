"""Team feedback: notes, stand-ups, runbook updates and shift handovers."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hypercare.api.deps import Db, State, Support, Viewer
from hypercare.feedback import handover as handover_service
from hypercare.feedback.drafts import SignalDraft
from hypercare.feedback.intake import team_draft
from hypercare.feedback.models import (
    Handover,
    IntakeAccepted,
    TeamNoteIn,
)
from hypercare.feedback.views.common import store
from hypercare.store.base import utcnow

router = APIRouter(prefix="/api/v1", tags=["feedback"])


# --- team feedback --------------------------------------------------------------------------


@router.post("/team/notes", status_code=201, response_model=IntakeAccepted)
async def team_note(
    state: State, session: Db, who: Support, body: TeamNoteIn, request: Request
) -> IntakeAccepted:
    """Observations, stand-up notes and runbook/documentation updates."""
    draft = team_draft(body, author=who.name, raw=body.model_dump(mode="json"))
    return await store(
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
    return await store(
        state,
        session,
        request,
        channel="team",
        source="handover",
        body=body.model_dump_json().encode(),
        drafts=[draft],
    )

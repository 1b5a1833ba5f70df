"""User feedback bodies (authenticated API and public widget) to signal drafts."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hypercare.feedback.drafts import Rejected, SignalDraft, parse_json
from hypercare.feedback.intake import feedback_draft
from hypercare.feedback.models import FeedbackIn, SurveyIn, TicketIn

HONEYPOT = "website"
_FEEDBACK = TypeAdapter[TicketIn | SurveyIn](FeedbackIn)


class WidgetIn(BaseModel):
    """What widget.js posts. `website` is the honeypot: people never see it, bots fill it."""

    model_config = ConfigDict(extra="forbid")

    category: Literal["bug", "question", "idea", "praise"]
    message: str = Field(min_length=1, max_length=5_000)
    email: str | None = Field(default=None, max_length=200)
    nps: int | None = Field(default=None, ge=0, le=10)
    url: str | None = Field(default=None, max_length=2000)
    user_agent: str | None = Field(default=None, max_length=500)
    request_ids: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=20
    )
    website: str = Field(default="", max_length=200)


def _explain(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if not str(p).startswith("function"))
        parts.append(f"{loc or 'body'}: {e.get('msg', '')}")
    return "the feedback is not valid: " + "; ".join(parts)


def check_score(body: TicketIn | SurveyIn) -> None:
    if isinstance(body, SurveyIn):
        low, high = (0, 10) if body.type == "nps" else (1, 5)
        if not low <= body.score <= high:
            raise Rejected(f"{body.type} score must be from {low} to {high}; got {body.score}")


def api_drafts(raw_body: bytes) -> list[SignalDraft]:
    data = parse_json(raw_body)
    try:
        body = _FEEDBACK.validate_python(data)
    except ValidationError as exc:
        raise Rejected(_explain(exc)) from None
    check_score(body)
    return [feedback_draft(body, via="api", raw=data)]


def parse_widget(raw_body: bytes) -> tuple[WidgetIn, object]:
    data = parse_json(raw_body)
    try:
        return WidgetIn.model_validate(data), data
    except ValidationError as exc:
        raise Rejected(_explain(exc)) from None


def widget_drafts(body: WidgetIn, raw: object) -> list[SignalDraft]:
    kind: Literal["ticket", "bug", "feature"] = {"bug": "bug", "idea": "feature"}.get(
        body.category, "ticket"
    )  # type: ignore[assignment]
    first = body.message.strip().splitlines()[0][:120] if body.message.strip() else body.category
    ticket = TicketIn(
        type=kind,
        subject=f"[{body.category}] {first}",
        description=body.message,
        requester=body.email,
        channel="widget",
        url=body.url,
        user_agent=body.user_agent,
        request_ids=body.request_ids,
    )
    first_draft = feedback_draft(ticket, via="widget", raw=raw)
    if body.category == "praise":
        first_draft = replace(first_draft, create_issue=False)
    drafts = [first_draft]
    if body.nps is not None:
        survey = SurveyIn(
            type="nps",
            score=body.nps,
            comment=body.message,
            requester=body.email,
            url=body.url,
            user_agent=body.user_agent,
        )
        drafts.append(feedback_draft(survey, via="widget", raw=raw))
    return drafts

"""Review, action item and runbook tables, and the API schemas around them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hypercare.bounds import Input
from hypercare.review.config import MAX_RUNBOOK_BYTES
from hypercare.review.rules import ReviewState
from hypercare.store.base import Base, UTCDateTime, utcnow


class Review(Base):
    """One post-incident review per issue. `facts` holds what was drafted from data (see
    `rules.ReviewFacts`); the text fields are what people write."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), unique=True)
    state: Mapped[str] = mapped_column(String(12), index=True, default=ReviewState.draft.value)
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    root_cause: Mapped[str] = mapped_column(Text, default="")
    contributing_factors: Mapped[str] = mapped_column(Text, default="")
    went_well: Mapped[str] = mapped_column(Text, default="")
    went_badly: Mapped[str] = mapped_column(Text, default="")
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    drafted_by: Mapped[str] = mapped_column(String(120))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ActionItem(Base):
    """An action item of a review, tracked as an issue (P4 by default) of its own."""

    __tablename__ = "review_action_items"
    __table_args__ = (UniqueConstraint("issue_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"), index=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Runbook(Base):
    """A Markdown runbook. `source` is ``config`` (kept in step with the file on start) or
    ``api``; matches are by component, gateway route or detection rule name."""

    __tablename__ = "runbooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    components: Mapped[list[str]] = mapped_column(JSON, default=list)
    routes: Mapped[list[str]] = mapped_column(JSON, default=list)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(10), default="api")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120))


class KnowledgeDoc(Base):
    """What full-text search reads: one row per runbook and per resolved issue with a
    workaround (kind ``runbook`` / ``workaround``, `ref` the runbook's or issue's id).
    SQLite indexes it with an FTS5 table kept by triggers, PostgreSQL with a GIN index on
    its tsvector (both made by migration 0011_review)."""

    __tablename__ = "knowledge_docs"
    __table_args__ = (UniqueConstraint("kind", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    ref: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    component: Mapped[str | None] = mapped_column(String(120), nullable=True, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReviewCursor(Base):
    """How far the review job has read the timeline (the outbox)."""

    __tablename__ = "review_cursor"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


# --- API schemas --------------------------------------------------------------------------

_LONG = 20_000


class ReviewUpdate(Input):
    """Fields people write; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=300)
    summary: str | None = Field(default=None, max_length=_LONG)
    root_cause: str | None = Field(default=None, max_length=_LONG)
    contributing_factors: str | None = Field(default=None, max_length=_LONG)
    went_well: str | None = Field(default=None, max_length=_LONG)
    went_badly: str | None = Field(default=None, max_length=_LONG)


class ReviewTransition(Input):
    model_config = ConfigDict(extra="forbid")

    to: ReviewState


class ActionItemCreate(Input):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=_LONG)
    assignee: str | None = Field(default=None, max_length=120)
    priority: str | None = Field(default=None, description="default P4 (the lowest level)")


class ActionItemRead(BaseModel):
    issue_id: int
    title: str
    priority: str
    status: str
    assignee: str | None


class ReviewRead(BaseModel):
    id: int
    issue_id: int
    issue_title: str
    issue_priority: str
    state: ReviewState
    allowed_transitions: list[ReviewState]
    title: str
    summary: str
    root_cause: str
    contributing_factors: str
    went_well: str
    went_badly: str
    facts: dict[str, Any]
    action_items: list[ActionItemRead]
    created_at: datetime
    updated_at: datetime
    drafted_by: str
    published_at: datetime | None


class ReviewSummary(BaseModel):
    id: int
    issue_id: int
    issue_title: str
    issue_priority: str
    state: ReviewState
    title: str
    failed_calls: int | None
    created_at: datetime
    updated_at: datetime


class ReviewPage(BaseModel):
    items: list[ReviewSummary]
    total: int


class RunbookWrite(Input):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=MAX_RUNBOOK_BYTES)
    components: list[str] = Field(default_factory=list, max_length=50)
    routes: list[str] = Field(default_factory=list, max_length=50)
    rules: list[str] = Field(default_factory=list, max_length=50)


class RunbookCreate(RunbookWrite):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$", description="unique slug")


class RunbookRead(BaseModel):
    id: int
    name: str
    title: str
    body: str
    components: list[str]
    routes: list[str]
    rules: list[str]
    source: str
    updated_at: datetime
    updated_by: str


class Workaround(BaseModel):
    issue_id: int
    title: str
    component: str | None
    workaround: str
    resolved_at: datetime | None


class IssueKnowledge(BaseModel):
    """What the knowledge base has for one issue: matching runbooks (with why they match)
    and workarounds of resolved issues of the same component."""

    runbooks: list[RunbookRead]
    matched_by: dict[str, list[str]]
    workarounds: list[Workaround]


class SearchHit(BaseModel):
    kind: str
    ref: int
    title: str
    snippet: str
    component: str | None
    link: str  # the console page showing it


class SearchResults(BaseModel):
    query: str
    items: list[SearchHit]


class IssueBlastRadius(BaseModel):
    """GET /issues/{id}/blast-radius: who the issue hurt, read from the call records."""

    issue_id: int
    routes: list[str]
    impact: dict[str, Any] | None = Field(
        description="first_failure_at, last_failure_at, duration_seconds; null: no failing call"
    )
    blast_radius: dict[str, Any] | None = Field(
        description="failed_calls, consumers (API keys) with counts, routes, statuses"
    )
    telemetry: dict[str, Any] = Field(description="blocks_read, complete (False: lower bounds)")

"""Issue and timeline tables, and the API schemas around them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hypercare.bounds import Input, Instant
from hypercare.store.base import Base, UTCDateTime, utcnow
from hypercare.triage.rules import SlaState, Status


class Issue(Base):
    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[str] = mapped_column(String(4), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True, default=Status.new.value)
    component: Mapped[str | None] = mapped_column(String(120), index=True, nullable=True)
    route: Mapped[str | None] = mapped_column(String(200), nullable=True)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    assignee: Mapped[str | None] = mapped_column(String(120), index=True, nullable=True)
    reporter: Mapped[str] = mapped_column(String(120), default="")
    workaround: Mapped[str | None] = mapped_column(Text, nullable=True)
    root_cause: Mapped[str | None] = mapped_column(Text, nullable=True)
    fix_ref: Mapped[str | None] = mapped_column(String(300), nullable=True)
    close_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    impact_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    detected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    mitigated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True, nullable=True)
    sla_state: Mapped[str] = mapped_column(String(10), default=SlaState.ok.value, index=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)


class TimelineEntry(Base):
    __tablename__ = "timeline_entries"
    __table_args__ = (Index("ix_timeline_issue_at", "issue_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- API schemas --------------------------------------------------------------------------

_Text = Field(default=None, max_length=20_000)


class IssueCreate(Input):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=20_000)
    priority: str | None = Field(default=None, description="P1..P4; default from config")
    component: str | None = Field(default=None, max_length=120)
    route: str | None = Field(default=None, max_length=200)
    labels: list[str] = Field(default_factory=list, max_length=50)
    assignee: str | None = Field(default=None, max_length=120)
    impact_started_at: Instant | None = None


class IssueUpdate(Input):
    """Fields to change; omitted fields stay as they are, `null` clears an optional field."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    priority: str | None = None
    component: str | None = Field(default=None, max_length=120)
    route: str | None = Field(default=None, max_length=200)
    labels: list[str] | None = Field(default=None, max_length=50)
    assignee: str | None = Field(default=None, max_length=120)
    workaround: str | None = _Text
    root_cause: str | None = _Text
    fix_ref: str | None = Field(default=None, max_length=300)
    impact_started_at: Instant | None = None


class TransitionRequest(Input):
    model_config = ConfigDict(extra="forbid")

    to: Status
    reason: str | None = Field(default=None, max_length=5_000)


class CommentCreate(Input):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000)


class TimelineRead(BaseModel):
    id: int
    at: datetime
    actor: str
    kind: str
    text: str
    data: dict[str, Any]


class IssueRead(BaseModel):
    id: int
    title: str
    description: str
    priority: str
    status: Status
    component: str | None
    route: str | None
    labels: list[str]
    assignee: str | None
    reporter: str
    workaround: str | None
    root_cause: str | None
    fix_ref: str | None
    close_reason: str | None
    created_at: datetime
    updated_at: datetime
    impact_started_at: datetime | None
    detected_at: datetime | None
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    verified_at: datetime | None
    closed_at: datetime | None
    due_at: datetime | None
    sla_state: SlaState
    sla_target_seconds: float | None
    escalation_level: int
    escalation_path: list[str]
    reopen_count: int
    allowed_transitions: list[Status]
    mttd_seconds: float | None
    mtta_seconds: float | None
    mttr_seconds: float | None


class IssuePage(BaseModel):
    items: list[IssueRead]
    total: int
    limit: int
    offset: int


class MatrixLevelRead(BaseModel):
    level: str
    name: str
    description: str
    impact: str
    target_seconds: float | None
    target: str
    escalation: list[str]


class MatrixRead(BaseModel):
    levels: list[MatrixLevelRead]
    at_risk_fraction: float
    default_priority: str

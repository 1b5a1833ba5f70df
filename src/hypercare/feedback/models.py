"""Signal, dedup group, intake delivery (raw bodies and dead letters) and integration
tables, and the API schemas around them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hypercare.bounds import Id, Input
from hypercare.feedback.config import FieldMapping, IntegrationType
from hypercare.store.base import Base, UTCDateTime, utcnow
from hypercare.triage.models import IssueRead


class IntakeDelivery(Base):
    """One HTTP delivery as received: the verbatim body and redacted headers. Rejected
    deliveries are the dead letters; a successful replay marks them ``replayed``."""

    __tablename__ = "intake_deliveries"
    __table_args__ = (Index("ix_intake_deliveries_outcome_id", "outcome", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    outcome: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    signal_count: Mapped[int] = mapped_column(Integer, default=0)
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Signal(Base):
    __tablename__ = "signals"
    __table_args__ = (
        Index("ix_signals_received", "received_at"),
        Index("ix_signals_source_received", "source", "received_at"),
        # an issue's signals, and its signals of one kind (its user reports, for the people
        # it affects): with an index on kind alone, that lookup reads every user report
        Index("ix_signals_issue_kind", "issue_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), index=True)
    source: Mapped[str] = mapped_column(String(40))
    integration_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("intake_deliveries.id", ondelete="SET NULL"), nullable=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    summary: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str | None] = mapped_column(String(10), nullable=True)
    component: Mapped[str | None] = mapped_column(String(120), nullable=True)
    service: Mapped[str | None] = mapped_column(String(120), nullable=True)
    route: Mapped[str | None] = mapped_column(String(200), nullable=True)
    consumer: Mapped[str | None] = mapped_column(String(120), nullable=True)
    request_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    trace_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dedup_key: Mapped[str] = mapped_column(String(400), index=True)
    issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="SET NULL"), nullable=True
    )
    raw: Mapped[Any] = mapped_column(JSON)


class SignalGroup(Base):
    """All signals with one dedup key while their issue is open: counter, last seen and
    whether the source says it is still firing."""

    __tablename__ = "signal_groups"
    __table_args__ = (Index("ix_signal_groups_key_open", "dedup_key", "open"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(400))
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    open: Mapped[bool] = mapped_column(default=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str | None] = mapped_column(String(10), nullable=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)


class Integration(Base):
    """An integration created through the API; its token is stored hashed."""

    __tablename__ = "integrations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))
    disabled: Mapped[bool] = mapped_column(default=False)


# --- API schemas --------------------------------------------------------------------------


class SignalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    source: str
    integration_id: str | None
    delivery_id: int | None
    occurred_at: datetime
    received_at: datetime
    summary: str
    body: str
    severity: str | None
    status: str | None
    component: str | None
    service: str | None
    route: str | None
    consumer: str | None
    request_ids: list[str]
    trace_id: str | None
    user_ref: str | None
    labels: dict[str, str]
    score: int | None
    dedup_key: str
    issue_id: int | None
    raw: Any


class SignalPage(BaseModel):
    items: list[SignalRead]
    total: int
    limit: int
    offset: int


class SignalGroupRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    dedup_key: str
    open: bool
    count: int
    status: str | None
    first_seen: datetime
    last_seen: datetime


class IssueDetail(IssueRead):
    """One issue with the signals attached to it (lists keep `IssueRead`)."""

    signals: list[SignalRead]
    signal_groups: list[SignalGroupRead]


class IntakeAccepted(BaseModel):
    delivery_id: int
    signals: list[int]
    issues: list[int]


class RejectedRead(BaseModel):
    id: int
    channel: str
    source: str
    received_at: datetime
    reason: str | None
    headers: dict[str, str]
    body: str
    body_bytes: int
    outcome: str
    replayed_at: datetime | None


class RejectedPage(BaseModel):
    items: list[RejectedRead]
    total: int


class IntegrationCreate(Input):
    model_config = ConfigDict(extra="forbid")

    type: IntegrationType
    name: str = Field(min_length=1, max_length=120)
    mapping: FieldMapping | None = Field(
        default=None, description="generic webhook only: where each field is"
    )
    sns_auto_confirm: bool = False


class IntegrationUpdate(Input):
    model_config = ConfigDict(extra="forbid")

    mapping: FieldMapping | None = None
    disabled: bool | None = None
    enabled: bool | None = Field(default=None, description="The opposite of `disabled`.")


class IntegrationRead(BaseModel):
    id: str
    type: str
    name: str
    url: str
    prefix: str | None
    managed_by: Literal["api", "config"]
    disabled: bool
    options: dict[str, Any]


class IntegrationCreated(IntegrationRead):
    token: str = Field(description="Shown once; only its hash is stored.")
    url_with_token: str


# --- user and team feedback bodies -----------------------------------------------------------

Channel = Literal["email", "portal", "phone", "chat", "social", "widget"]
Perceived = Literal["critical", "high", "medium", "low"]
_RequestIds: Any = Field(default_factory=list, max_length=20)


class _Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    request_ids: list[Annotated[str, Field(max_length=100)]] = _RequestIds
    user_agent: str | None = Field(default=None, max_length=500)
    component: str | None = Field(default=None, max_length=120)


class TicketIn(_Feedback):
    type: Literal["ticket", "bug", "feature"]
    subject: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=20_000)
    requester: str | None = Field(default=None, max_length=200)
    channel: Channel = "portal"
    severity: Perceived | None = None
    dedup_key: str | None = Field(default=None, max_length=300)


class SurveyIn(_Feedback):
    type: Literal["nps", "csat"]
    score: int = Field(description="NPS 0-10, CSAT 1-5")
    comment: str = Field(default="", max_length=5_000)
    requester: str | None = Field(default=None, max_length=200)


FeedbackIn = Annotated[TicketIn | SurveyIn, Field(discriminator="type")]


class TeamNoteIn(Input):
    model_config = ConfigDict(extra="forbid")

    type: Literal["observation", "standup", "runbook"]
    text: str = Field(min_length=1, max_length=20_000)
    component: str | None = Field(default=None, max_length=120)
    issue_id: Id | None = None
    url: str | None = Field(default=None, max_length=2000)


class HandoverIssue(BaseModel):
    id: int
    title: str
    priority: str
    status: str
    assignee: str | None
    sla_state: str
    due_at: datetime | None


class Handover(Input):
    """A shift handover: the draft the console builds, edited and posted back."""

    model_config = ConfigDict(extra="forbid")

    shift: str = Field(default="", max_length=120)
    open_issues: dict[str, list[HandoverIssue]] = Field(default_factory=dict)
    investigations: list[str] = Field(default_factory=list, max_length=200)
    mitigations: list[str] = Field(default_factory=list, max_length=200)
    watch: list[str] = Field(default_factory=list, max_length=200)
    notes: str = Field(default="", max_length=20_000)


class ScoreBucket(BaseModel):
    start: datetime
    nps: float | None
    nps_responses: int
    promoters: int
    passives: int
    detractors: int
    csat: float | None
    csat_responses: int
    csat_satisfied: int


class Scores(BaseModel):
    start: datetime
    end: datetime
    step_seconds: float
    total: ScoreBucket
    buckets: list[ScoreBucket]

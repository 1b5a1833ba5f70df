"""Delivery rows, the outbox cursor, used acknowledgement links, and the API schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hypercare.bounds import Input, Instant
from hypercare.response.rules import DeliveryState
from hypercare.store.base import Base, UTCDateTime, utcnow


class Delivery(Base):
    """One message to one channel about one timeline entry: unique per (entry, channel), so
    the outbox may look at an entry twice (after a restart) without sending twice."""

    __tablename__ = "response_deliveries"
    __table_args__ = (
        Index("ix_response_deliveries_due", "state", "next_attempt_at"),
        Index("uq_response_deliveries_entry_channel", "entry_id", "channel", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), index=True, nullable=True
    )
    entry_id: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(30))
    channel: Mapped[str] = mapped_column(String(80))
    channel_type: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(300))
    # what the message says, fixed when the delivery is made (retries resend the same)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(10), default=DeliveryState.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    receiver_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(300), nullable=True)


class ResponseSetting(Base):
    """Small durable values of the response domain: the outbox cursor, the generated
    signing key (when the config gives none)."""

    __tablename__ = "response_settings"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ChannelSecret(Base):
    """A webhook secret Hypercare generated (the channel's config gave none), encrypted with
    the signing key: the dispatcher needs it in clear to sign, so it cannot be hashed."""

    __tablename__ = "response_channel_secrets"

    channel: Mapped[str] = mapped_column(String(80), primary_key=True)
    encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UsedAckLink(Base):
    """The nonce of a signed acknowledgement link that was used: each works once."""

    __tablename__ = "response_used_ack_links"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- API schemas --------------------------------------------------------------------------


class DeliveryRead(BaseModel):
    id: int
    issue_id: int | None
    entry_id: int
    event: str
    channel: str
    channel_type: str
    recipient: str
    state: DeliveryState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    sent_at: datetime | None
    receiver_status: int | None
    error: str | None


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    total: int


class AcknowledgeRequest(Input):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    note: str | None = Field(default=None, max_length=2000)


class ChannelRead(BaseModel):
    name: str
    type: str
    recipient: str
    signed: bool
    # a generated webhook secret, in clear exactly once (the first time it is read)
    secret: str | None = None
    secret_revealed_at: datetime | None = None


# --- on call (part B) ---------------------------------------------------------------------


class OncallOverride(Base):
    """Somebody takes a schedule over from `start` to `end`, on top of every layer."""

    __tablename__ = "response_oncall_overrides"
    __table_args__ = (Index("ix_response_oncall_overrides_span", "schedule", "end_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule: Mapped[str] = mapped_column(String(80))
    person: Mapped[str] = mapped_column(String(80))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OverrideCreate(Input):
    model_config = ConfigDict(extra="forbid")

    person: str = Field(min_length=1, max_length=80)
    start: Instant
    end: Instant
    note: str | None = Field(default=None, max_length=500)


class OverrideRead(BaseModel):
    id: int
    schedule: str
    person: str
    start: datetime
    end: datetime
    note: str | None
    created_by: str
    created_at: datetime


class ShiftRead(BaseModel):
    schedule: str
    person: str
    start: datetime
    end: datetime
    layer: str


class ScheduleOnCall(BaseModel):
    schedule: str
    time_zone: str
    on_call: ShiftRead | None
    next: list[ShiftRead]


class OnCallRead(BaseModel):
    at: datetime
    schedules: list[ScheduleOnCall]


class ContactRead(BaseModel):
    type: str
    channel: str | None
    target: str | None
    # a contact's own webhook URL is shown by host only: it may carry a token
    url_host: str | None


class PersonRead(BaseModel):
    name: str
    full_name: str | None
    email: str | None
    time_zone: str
    contacts: list[ContactRead]
    token: str | None
    schedules: list[str]
    on_call: list[ShiftRead]
    ical_path: str


class ScheduleRead(BaseModel):
    name: str
    time_zone: str
    description: str | None
    layers: list[dict[str, Any]]
    overrides: list[OverrideRead]
    ical_path: str


class Escalation(Base):
    """One issue's run of one escalation policy: which step it is at and when the next is
    due. Stopped (with the reason) by acknowledgement, resolution or the last step."""

    __tablename__ = "response_escalations"
    __table_args__ = (
        Index("uq_response_escalations_issue_policy", "issue_id", "policy", unique=True),
        Index("ix_response_escalations_due", "stopped_at", "next_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    policy: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    advance_to: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(String(100), nullable=True)


class TestRequest(Input):
    """Send a test message: to a configured channel by name, or to a webhook `url` given here
    (refused when it resolves to a private address the config's allow_private does not name)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    channel: str | None = Field(default=None, max_length=80)
    url: str | None = Field(default=None, max_length=2000)


class TestResult(BaseModel):
    ok: bool
    status: int | None
    error: str | None

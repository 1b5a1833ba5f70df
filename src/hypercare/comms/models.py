"""Subscribers of the status page, and the API schemas around them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hypercare.store.base import Base, UTCDateTime, utcnow

MAX_TARGET = 500


class Subscriber(Base):
    """An email address (confirmed through a signed link before anything is sent to it) or
    a webhook URL told about public incidents and maintenance of its `components` (empty:
    all)."""

    __tablename__ = "comms_subscribers"
    __table_args__ = (UniqueConstraint("kind", "target", name="uq_comms_subscribers_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(MAX_TARGET))
    components: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SubscriberRead(BaseModel):
    id: int
    kind: Literal["email", "webhook"]
    target: str
    components: list[str]
    created_at: datetime
    confirmed_at: datetime | None


class SubscriberPage(BaseModel):
    items: list[SubscriberRead]
    total: int

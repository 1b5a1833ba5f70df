"""Deployments, signal links with their reasons, human corrections, and validation watches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hypercare.bounds import Id, Input, Instant
from hypercare.feedback.models import IssueDetail
from hypercare.store.base import Base, UTCDateTime, utcnow


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(120), index=True)
    version: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20), default="deploy")  # deploy | hotfix | rollback
    issue_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))


class SignalLink(Base):
    """Why a signal sits on an issue: the score and the human-readable reasons."""

    __tablename__ = "signal_links"
    __table_args__ = (Index("ix_signal_links_issue", "issue_id"),)

    signal_id: Mapped[int] = mapped_column(
        ForeignKey("signals.id", ondelete="CASCADE"), primary_key=True
    )
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    by: Mapped[str] = mapped_column(String(120))  # "hypercare" or the person who linked it
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignalExclusion(Base):
    """A person took this signal off this issue: automation never puts it back."""

    __tablename__ = "signal_exclusions"

    signal_id: Mapped[int] = mapped_column(
        ForeignKey("signals.id", ondelete="CASCADE"), primary_key=True
    )
    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    by: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ValidationWatch(Base):
    """Hypercare watching an issue's routes after a fix."""

    __tablename__ = "validation_watches"
    __table_args__ = (Index("ix_validation_watches_state", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    routes: Mapped[list[str]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(String(200))  # "resolved" or "deployment #3"
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(
        String(12), default="watching"
    )  # watching|verified|regressed
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AlertRule(Base):
    """A rule added through the API (rules from the configuration file are not stored)."""

    __tablename__ = "alert_rules"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- API schemas --------------------------------------------------------------------------


class DeploymentCreate(Input):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=120)
    version: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=5000)
    kind: str = Field(default="deploy", pattern="^(deploy|hotfix|rollback)$")
    issue_ids: list[Id] = Field(default_factory=list, max_length=50)
    deployed_at: Instant | None = None


class DeploymentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    service: str
    version: str
    description: str
    kind: str
    issue_ids: list[int]
    deployed_at: datetime
    actor: str


class MergeRequest(Input):
    model_config = ConfigDict(extra="forbid")

    into: Id = Field(description="the issue that keeps the signals")


class SplitRequest(Input):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=300)


class WatchRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    issue_id: int
    routes: list[str]
    reason: str
    started_at: datetime
    ends_at: datetime
    state: str
    outcome: dict[str, Any]


class LinkRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    signal_id: int
    issue_id: int
    score: float
    reasons: list[str]
    by: str
    at: datetime


class IssueAnalysis(IssueDetail):
    """One issue with its signals, why each is linked, and how its fix is being validated."""

    links: list[LinkRead]
    validation: list[WatchRead]

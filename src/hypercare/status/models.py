"""Public incidents and their updates, maintenance windows, manual overrides, the
components' automatic states and templates edited through the API; the API schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hypercare.bounds import MAX_ID, Input, Instant
from hypercare.store.base import Base, UTCDateTime, utcnow


class StatusIncident(Base):
    """A public incident. Nothing of it is public until `published`; the internal issue it
    comes from is never shown, only what was written for the public."""

    __tablename__ = "status_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="SET NULL"), index=True, nullable=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="investigating", index=True)
    impact: Mapped[str] = mapped_column(String(10), default="minor")
    components: Mapped[list[str]] = mapped_column(JSON, default=list)
    published: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # the component whose change suggested it (automatic draft), else None
    suggested_by: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    monitoring_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_update_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class StatusIncidentUpdate(Base):
    __tablename__ = "status_incident_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("status_incidents.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    # [{"code", "name", "old_status", "new_status"}]
    affected_components: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatusMaintenance(Base):
    """A maintenance window of some components; its status follows the clock unless it was
    completed or cancelled early."""

    __tablename__ = "status_maintenances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    components: Mapped[list[str]] = mapped_column(JSON, default=list)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    scheduled_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatusOverride(Base):
    """A component state set by hand, until `expires_at` (or until lifted)."""

    __tablename__ = "status_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component: Mapped[str] = mapped_column(String(80), index=True)
    status: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatusComponentState(Base):
    """The automatic state of a component, kept so a restart keeps `since`."""

    __tablename__ = "status_component_states"

    component: Mapped[str] = mapped_column(String(80), primary_key=True)
    status: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text, default="")
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatusTemplate(Base):
    """A message template edited through the API (wins over the configuration file)."""

    __tablename__ = "status_templates"

    scenario: Mapped[str] = mapped_column(String(40), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- API schemas ---------------------------------------------------------------------------

ComponentStatusName = Literal[
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"
]
IncidentStatusName = Literal["investigating", "identified", "monitoring", "resolved", "postmortem"]
ImpactName = Literal["none", "minor", "major", "critical"]
ScenarioName = Literal[
    "degradation",
    "outage",
    "identified",
    "monitoring",
    "resolved",
    "maintenance_start",
    "maintenance_end",
]


class ComponentChange(Input):
    component: str = Field(max_length=80)
    status: ComponentStatusName


class IncidentCreate(Input):
    """Open a public incident from an internal issue. Without `body`, the scenario's
    template is rendered (with `workaround` and `next_update_in_minutes`)."""

    issue_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    name: str = Field(min_length=1, max_length=200)
    status: IncidentStatusName = "investigating"
    impact: ImpactName | None = None
    components: list[str] = Field(default_factory=list, max_length=200)
    body: str | None = Field(default=None, max_length=5000)
    scenario: ScenarioName | None = None
    workaround: str | None = Field(default=None, max_length=1000)
    next_update_in_minutes: int | None = Field(default=None, ge=1, le=10080)
    publish: bool = True


class UpdateCreate(Input):
    status: IncidentStatusName
    body: str | None = Field(default=None, max_length=5000)
    scenario: ScenarioName | None = None
    workaround: str | None = Field(default=None, max_length=1000)
    next_update_in_minutes: int | None = Field(default=None, ge=1, le=10080)
    impact: ImpactName | None = None
    # components whose shown state changes with this update (a manual override until
    # resolved); their old and new state are recorded on the update
    affected: list[ComponentChange] = Field(default_factory=list, max_length=200)
    publish: bool | None = None


class UpdateRead(BaseModel):
    id: int
    status: str
    body: str
    affected_components: list[dict[str, Any]]
    created_by: str
    created_at: datetime


class IncidentRead(BaseModel):
    id: int
    issue_id: int | None
    name: str
    status: str
    impact: str
    components: list[str]
    published: bool
    suggested_by: str | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    last_update_at: datetime | None
    updates: list[UpdateRead]


class MaintenanceCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=5000)
    components: list[str] = Field(min_length=1, max_length=200)
    scheduled_for: Instant
    scheduled_until: Instant


class MaintenanceRead(BaseModel):
    id: int
    name: str
    body: str
    components: list[str]
    scheduled_for: datetime
    scheduled_until: datetime
    completed_at: datetime | None
    status: str


class OverrideCreate(Input):
    component: str = Field(max_length=80)
    status: ComponentStatusName
    reason: str = Field(default="", max_length=2000)
    expires_in_minutes: int | None = Field(default=60, ge=1, le=60 * 24 * 30)


class OverrideRead(BaseModel):
    id: int
    component: str
    status: str
    reason: str
    expires_at: datetime | None
    created_by: str
    created_at: datetime


class TemplateUpdate(Input):
    body: str = Field(min_length=1, max_length=5000)


class TemplateRead(BaseModel):
    scenario: str
    body: str
    source: Literal["default", "config", "api"]


class PreviewRequest(Input):
    body: str | None = Field(default=None, max_length=5000)
    scenario: ScenarioName | None = None
    variables: dict[str, str | list[str]] = Field(default_factory=dict, max_length=20)


class PreviewRead(BaseModel):
    text: str


class ComponentRead(BaseModel):
    name: str
    id: str
    group: str | None
    routes: list[str]
    status: str
    automatic: str
    source: str
    reason: str
    since: datetime | None

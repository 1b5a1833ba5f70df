"""Launch tables (the launches made through the API, the state a person set, the history of
exit evaluations) and the API schemas around them. Launches are declared in the config file
or made through the API; both are validated by the same `LaunchConfig`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hypercare.bounds import EARLIEST, LATEST, Input, Instant
from hypercare.launch.config import LaunchConfig
from hypercare.launch.rules import LaunchState
from hypercare.store.base import Base, UTCDateTime, utcnow


class LaunchDef(Base):
    """A launch made through the API: its definition as sent (the JSON of a ``launches:``
    entry, validated by `LaunchConfig` when it was stored and whenever it is read)."""

    __tablename__ = "launch_defs"
    __table_args__ = (UniqueConstraint("name", name="uq_launch_defs_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120))


class LaunchRecord(Base):
    """The state of a launch once someone moved it (before that the calendar decides), and
    the end it was extended to."""

    __tablename__ = "launch_states"
    __table_args__ = (UniqueConstraint("name", name="uq_launch_states_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_by: Mapped[str] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, default="")
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class LaunchEvaluation(Base):
    """One evaluation of a launch's exit criteria, with its evidence."""

    __tablename__ = "launch_evaluations"
    __table_args__ = (Index("ix_launch_evaluations_launch_at", "launch", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    launch: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    passed: Mapped[bool] = mapped_column(Boolean)
    passing: Mapped[int] = mapped_column(Integer)
    criteria: Mapped[int] = mapped_column(Integer)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


# --- API schemas ----------------------------------------------------------------------------


class LaunchSpec(Input, LaunchConfig):
    """The body of ``POST /api/v1/launches``: a ``launches:`` entry as JSON, with the same
    validation (durations as ``"72h"`` or seconds), its times within the store's range."""

    @model_validator(mode="after")
    def _instants(self) -> LaunchSpec:
        for at in (self.start, self.end):
            if at is not None and not EARLIEST <= at < LATEST:
                raise ValueError(
                    f"start and end must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"
                )
        return self


class StateChange(Input):
    model_config = ConfigDict(extra="forbid")

    to: LaunchState
    end: Instant | None = Field(default=None, description="the new end (required to extend)")
    note: str = Field(default="", max_length=5000)


class LaunchChanges(Input):
    """Fields of an API-made launch to replace (as in POST); ``null`` restores a field's
    default. Any field name is taken here (the merged launch is validated as on creation);
    text holding a NUL character is refused first, naming the field."""

    model_config = ConfigDict(extra="allow")


class SloRead(BaseModel):
    name: str
    kind: str
    route: str | None
    component: str | None
    routes: list[str]
    target: float
    window_seconds: float
    calls: int
    bad: int
    sli: float | None
    met: bool
    budget_remaining: float
    burn: dict[str, Any] | None


class LaunchRead(BaseModel):
    name: str
    source: Literal["config", "api"] = Field(
        description="config: declared in the config file; api: made through the API"
    )
    state: LaunchState
    start: datetime
    end: datetime
    planned_end: datetime
    time_zone: str
    routes: list[str]
    components: list[str]
    objectives: list[str]
    kpis: list[dict[str, Any]]
    roster: dict[str, dict[str, Any]]
    exit_criteria: list[dict[str, Any]]
    allowed_transitions: list[LaunchState]
    state_history: list[dict[str, Any]]


class EvaluationRead(BaseModel):
    id: int
    at: datetime
    passed: bool
    passing: int
    criteria: int
    results: list[dict[str, Any]]

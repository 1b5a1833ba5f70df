"""The ``launches:`` section: the hypercare periods, their SLOs and exit criteria.

The minimal launch::

    launches:
      - name: checkout-v2
        start: 2026-01-05T09:00:00Z
        routes: [payment-status]
        exit_criteria:
          - no_open: [P1, P2]

Names that point at routes, components, metrics or priorities are checked against the rest
of the file by `reference_errors` (so the message names the line).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator, model_validator

from hypercare.configtypes import Duration, StrictModel
from hypercare.telemetry.config import METRICS

ACTIVITIES = ("triage", "resolution", "communication", "escalation", "exit_approval")
DEFAULT_LENGTH = timedelta(days=28)
MAX_SLO_WINDOW = timedelta(days=28)
# the rollup metrics a `metric` criterion may bound
CRITERION_METRICS = METRICS
Name = Field(pattern=r"^[A-Za-z0-9_.\-]+$", min_length=1, max_length=100)


class Raci(StrictModel):
    """Who is Responsible, Accountable, Consulted and Informed for one activity."""

    responsible: list[str] = Field(default_factory=list, max_length=50)
    accountable: str | None = Field(default=None, max_length=120)
    consulted: list[str] = Field(default_factory=list, max_length=50)
    informed: list[str] = Field(default_factory=list, max_length=50)


class Kpi(StrictModel):
    """A key figure the launch is judged by; `route` + `metric` make it live."""

    name: str = Field(min_length=1, max_length=200)
    target: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)
    route: str | None = Field(default=None, max_length=200)
    metric: str | None = Field(default=None, max_length=40)
    window: Duration = timedelta(hours=24)


class SloConfig(StrictModel):
    """One objective over a route or a component's routes.

    availability: good = not 5xx (a gateway error answers 5xx, so it counts as bad);
    ``count_4xx: true`` also counts 4xx as bad. latency: good = answered within `threshold`.
    """

    name: str = Name
    route: str | None = Field(default=None, max_length=200)
    component: str | None = Field(default=None, max_length=120)
    kind: Literal["availability", "latency"] = "availability"
    target: float = Field(description="percent of good calls, in (0, 100)")
    threshold: Duration | None = None
    window: Duration | None = None  # default: the launch length, at most 28 d
    count_4xx: bool = False

    @field_validator("target")
    @classmethod
    def _target(cls, v: float) -> float:
        if not 0 < v < 100:
            raise ValueError(f"SLO target {v} is outside (0, 100): give a percentage like 99.9")
        return v

    @model_validator(mode="after")
    def _shape(self) -> SloConfig:
        if (self.route is None) == (self.component is None):
            raise ValueError("give exactly one of route or component")
        if self.kind == "latency" and self.threshold is None:
            raise ValueError("a latency SLO needs a threshold, e.g. threshold: 500ms")
        if self.window is not None and not (timedelta(hours=1) <= self.window <= MAX_SLO_WINDOW):
            raise ValueError("window must be between 1h and 28d")
        return self


class NoNew(StrictModel):
    priority: list[str] = Field(default_factory=lambda: ["P1"], max_length=10)
    for_: Duration = Field(default=timedelta(hours=72), alias="for")


class SloMet(StrictModel):
    for_: Duration = Field(default=timedelta(hours=48), alias="for")
    slos: list[str] = Field(default_factory=list, max_length=200)  # empty: every SLO


class TicketsPerDay(StrictModel):
    max: float = Field(ge=0)
    trending: Literal["down", "any"] = "down"
    days: int = Field(default=7, ge=2, le=28)


class ScoreBound(StrictModel):
    min: float = Field(ge=-100, le=100)
    window: Duration = timedelta(days=7)
    min_responses: int = Field(default=1, ge=1)


class MetricBound(StrictModel):
    route: str = Field(max_length=200)
    metric: str = Field(max_length=40)
    max: float | None = None
    min: float | None = None
    window: Duration = timedelta(hours=24)

    @model_validator(mode="after")
    def _one_bound(self) -> MetricBound:
        if self.max is None and self.min is None:
            raise ValueError("give max or min (or both)")
        return self


class Criterion(StrictModel):
    """Exactly one key per criterion, e.g. ``- no_open: [P1, P2]``."""

    no_open: list[str] | None = Field(default=None, max_length=10)
    no_new: NoNew | None = None
    slo_met: SloMet | None = None
    tickets_per_day: TicketsPerDay | None = None
    nps: ScoreBound | None = None
    csat: ScoreBound | None = None
    metric: MetricBound | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Criterion:
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "each criterion is one of no_open, no_new, slo_met, tickets_per_day, nps, "
                f"csat, metric (got {', '.join(given) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)


class LaunchConfig(StrictModel):
    name: str = Name
    start: AwareDatetime
    end: AwareDatetime | None = None  # planned end; default start + 28 d
    time_zone: str = "UTC"
    routes: list[str] = Field(default_factory=list, max_length=1000)
    components: list[str] = Field(default_factory=list, max_length=200)
    objectives: list[str] = Field(default_factory=list, max_length=50)
    kpis: list[Kpi] = Field(default_factory=list, max_length=50)
    roster: dict[str, Raci] = Field(default_factory=dict)
    slos: list[SloConfig] = Field(default_factory=list, max_length=500)
    exit_criteria: list[Criterion] = Field(default_factory=list, max_length=50)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Europe/Berlin)"
            ) from None
        return v

    @field_validator("roster")
    @classmethod
    def _activities(cls, v: dict[str, Raci]) -> dict[str, Raci]:
        for activity in v:
            if activity not in ACTIVITIES:
                raise ValueError(f"unknown activity {activity!r}; use {', '.join(ACTIVITIES)}")
        return v

    @model_validator(mode="after")
    def _dates(self) -> LaunchConfig:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        names = [s.name for s in self.slos]
        if len(set(names)) != len(names):
            raise ValueError("SLO names must be unique within a launch")
        return self

    @property
    def planned_end(self) -> datetime:
        return self.end if self.end is not None else self.start + DEFAULT_LENGTH


def reference_errors(
    launches: list[LaunchConfig],
    *,
    routes: dict[str, str | None],
    priorities: list[str],
) -> list[tuple[tuple[str | int, ...], str]]:
    """Routes, components, metrics and priorities named by launches that the rest of the file
    does not define. `routes` maps each gateway route to its component tag; with no gateway
    routes configured (telemetry shipped from remote gateways) route names are not checked,
    and components only when some route carries a component tag."""
    errors: list[tuple[tuple[str | int, ...], str]] = []
    known_components = {c for c in routes.values() if c}
    route_list = ", ".join(sorted(routes)) or "none"
    comp_list = ", ".join(sorted(known_components)) or "none"
    seen: set[str] = set()

    def route_ok(name: str | None) -> bool:
        return name is None or not routes or name in routes

    def comp_ok(name: str | None) -> bool:
        return name is None or not known_components or name in known_components

    for i, launch in enumerate(launches):
        here: tuple[str | int, ...] = ("launches", i)
        if launch.name in seen:
            errors.append(((*here, "name"), f"launch {launch.name!r} is defined twice"))
        seen.add(launch.name)
        for j, r in enumerate(launch.routes):
            if not route_ok(r):
                errors.append(((*here, "routes", j), f"unknown route {r!r} (routes: {route_list})"))
        for j, c in enumerate(launch.components):
            if not comp_ok(c):
                errors.append(
                    (
                        (*here, "components", j),
                        f"unknown component {c!r} (route tags name: {comp_list})",
                    )
                )
        for j, slo in enumerate(launch.slos):
            if not route_ok(slo.route):
                errors.append(
                    (
                        (*here, "slos", j, "route"),
                        f"unknown route {slo.route!r} (routes: {route_list})",
                    )
                )
            if not comp_ok(slo.component):
                errors.append(
                    (
                        (*here, "slos", j, "component"),
                        f"unknown component {slo.component!r} (route tags name: {comp_list})",
                    )
                )
        for j, kpi in enumerate(launch.kpis):
            if not route_ok(kpi.route):
                errors.append(((*here, "kpis", j, "route"), f"unknown route {kpi.route!r}"))
            if kpi.metric is not None and kpi.metric not in CRITERION_METRICS:
                errors.append(
                    (
                        (*here, "kpis", j, "metric"),
                        f"unknown metric {kpi.metric!r}; use {', '.join(CRITERION_METRICS)}",
                    )
                )
        slo_names = {s.name for s in launch.slos}
        for j, crit in enumerate(launch.exit_criteria):
            at = (*here, "exit_criteria", j, crit.kind)
            for k, p in enumerate(crit.no_open or []):
                if p not in priorities:
                    errors.append(
                        (
                            (*at, k),
                            f"unknown priority {p!r} (the matrix has {', '.join(priorities)})",
                        )
                    )
            if crit.no_new is not None:
                for k, p in enumerate(crit.no_new.priority):
                    if p not in priorities:
                        errors.append(
                            (
                                (*at, "priority", k),
                                f"unknown priority {p!r} (the matrix has {', '.join(priorities)})",
                            )
                        )
            if crit.slo_met is not None:
                if not launch.slos:
                    errors.append((at, "slo_met needs SLOs: add slos to this launch"))
                for k, name in enumerate(crit.slo_met.slos):
                    if name not in slo_names:
                        errors.append(
                            (
                                (*at, "slos", k),
                                f"unknown SLO {name!r} (this launch has "
                                f"{', '.join(sorted(slo_names)) or 'none'})",
                            )
                        )
                if crit.slo_met.for_ > MAX_SLO_WINDOW:
                    errors.append(((*at, "for"), "slo_met can look back at most 28d"))
            if crit.metric is not None:
                if not route_ok(crit.metric.route):
                    errors.append(
                        (
                            (*at, "route"),
                            f"unknown route {crit.metric.route!r} (routes: {route_list})",
                        )
                    )
                if crit.metric.metric not in CRITERION_METRICS:
                    errors.append(
                        (
                            (*at, "metric"),
                            f"unknown metric {crit.metric.metric!r}; use "
                            f"{', '.join(CRITERION_METRICS)}",
                        )
                    )
                if (
                    crit.metric.max is not None
                    and crit.metric.min is not None
                    and crit.metric.min > crit.metric.max
                ):
                    errors.append((at, "min is above max: no value can pass"))
    return errors

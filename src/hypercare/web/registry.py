"""How a part of the console plugs in: its routes, its navigation items, its overview tiles.

A domain adds its pages by defining one `ConsolePart` (a router, templates, nav items and
optional overview slots) and listing it in `hypercare.web.app.PARTS`. Nothing is shown for
a part that is not installed: the navigation and the overview are built from the parts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.triage.models import IssueRead

# Regions of the overview page that later parts fill in; an empty region is not rendered.
Region = Literal["launch", "api_health", "oncall", "latest_signals"]
SlotLoader = Callable[[AsyncSession, AppState], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str
    # the first path segment that marks this item as the current page ("" for the overview)
    section: str
    order: int = 100
    min_role: Role = Role.viewer
    # single-key shortcut "g <key>" that jumps here
    key: str | None = None


@dataclass(frozen=True, slots=True)
class OverviewSlot:
    """A tile on the overview: `template` is rendered with what `load` returns.

    With `href`, the overview does not wait for `load`: it shows a placeholder that fetches
    `href` (a route of the part rendering `template`) once the page is there. For slots
    whose data is slow to read, so that the overview itself loads fast."""

    region: Region
    title: str
    template: str
    load: SlotLoader
    href: str | None = None


# Regions of the issue page that later parts fill in (signals linked to the issue, charts of
# the issue's route); the loader gets the issue being shown.
# "response": the side column (notification log, acknowledge); "knowledge": matching
# runbooks and past workarounds, after the linked signals
IssueRegion = Literal["linked_signals", "route_charts", "response", "knowledge"]
IssuePanelLoader = Callable[[AsyncSession, AppState, IssueRead], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class IssuePanel:
    region: IssueRegion
    title: str
    template: str
    load: IssuePanelLoader


@dataclass(frozen=True, slots=True)
class ConsolePart:
    name: str
    router: APIRouter
    nav: tuple[NavItem, ...] = ()
    slots: tuple[OverviewSlot, ...] = ()
    issue_panels: tuple[IssuePanel, ...] = ()

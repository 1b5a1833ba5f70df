"""The console's rendering: one Jinja2 environment, the page context and response headers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from hypercare import __version__
from hypercare.auth.models import Principal
from hypercare.auth.rules import Role, allows
from hypercare.review.rules import render_markdown
from hypercare.store.base import utcnow
from hypercare.web import rules
from hypercare.web.registry import (
    ConsolePart,
    IssuePanel,
    IssueRegion,
    NavItem,
    OverviewSlot,
    Region,
)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Everything is served by the console itself: no third-party origin is ever contacted.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    seconds = int(((now or utcnow()) - value).total_seconds())
    if seconds < 60:
        return "just now"
    return rules.duration(seconds).split(" ")[0] + " ago"


class Console:
    """The installed parts, the template environment and the page context builder."""

    def __init__(self, parts: tuple[ConsolePart, ...]) -> None:
        self.parts = parts
        self.nav: tuple[NavItem, ...] = tuple(
            sorted((item for p in parts for item in p.nav), key=lambda i: (i.order, i.label))
        )
        self.slots: dict[Region, tuple[OverviewSlot, ...]] = {
            "launch": tuple(s for p in parts for s in p.slots if s.region == "launch"),
            "api_health": tuple(s for p in parts for s in p.slots if s.region == "api_health"),
            "oncall": tuple(s for p in parts for s in p.slots if s.region == "oncall"),
            "latest_signals": tuple(
                s for p in parts for s in p.slots if s.region == "latest_signals"
            ),
        }
        self.issue_panels: dict[IssueRegion, tuple[IssuePanel, ...]] = {
            "linked_signals": tuple(
                x for p in parts for x in p.issue_panels if x.region == "linked_signals"
            ),
            "route_charts": tuple(
                x for p in parts for x in p.issue_panels if x.region == "route_charts"
            ),
            "response": tuple(x for p in parts for x in p.issue_panels if x.region == "response"),
            "knowledge": tuple(x for p in parts for x in p.issue_panels if x.region == "knowledge"),
        }
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            # templates ship with the package: no need to stat them on every render
            auto_reload=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            when=_when,
            ago=_ago,
            duration=rules.duration,
            iso=lambda v: v.isoformat() if v else "",
            readable_times=rules.readable_times,
            # Markdown as HTML with any HTML in the text escaped (runbooks, reviews)
            markdown=lambda text: Markup(render_markdown(text or "")),
        )
        self.env.globals.update(version=__version__, countdown=rules.countdown, stamp=rules.stamp)

    def context(
        self, request: Request, principal: Principal | None, csrf: str, **extra: Any
    ) -> dict[str, Any]:
        role = principal.role if principal else None
        section = request.url.path.strip("/").split("/", 1)[0]
        return {
            "request": request,
            "principal": principal,
            "csrf": csrf,
            "nav": [i for i in self.nav if role and allows(role, i.min_role)],
            "section": section,
            "can_report": bool(role and allows(role, Role.support)),
            "can_triage": bool(role and allows(role, Role.responder)),
            "now": utcnow(),
            "poll_seconds": int(
                request.app.state.hypercare.config.web.poll_interval.total_seconds()
            ),
            **extra,
        }

    @staticmethod
    def _poll(request: Request) -> float:
        seconds: float = request.app.state.hypercare.config.web.poll_interval.total_seconds()
        return seconds

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(context)
        return HTMLResponse(
            html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
        )


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"

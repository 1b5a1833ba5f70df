"""Wire the console into the FastAPI app: its parts, static files and error pages."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import escape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hypercare.api import errors as api_errors
from hypercare.auth.rules import Role
from hypercare.web import (
    detection,
    digest,
    feedback,
    integrations,
    issues,
    launch,
    live,
    oncall,
    overview,
    response,
    reviews,
    signin,
    status,
    telemetry,
)
from hypercare.web.console import SECURITY_HEADERS, STATIC, Console, console_of, is_htmx
from hypercare.web.deps import PageError, SignInRequired
from hypercare.web.registry import ConsolePart, NavItem
from hypercare.web.rules import wants_page

_tracker_router = APIRouter(include_in_schema=False)
_tracker_router.include_router(overview.router)
_tracker_router.include_router(issues.router)

# The issue tracker's pages. Parts for telemetry, feedback, integrations and handover are
# added here as their backends land, each with its own router, templates and nav items.
TRACKER = ConsolePart(
    name="tracker",
    router=_tracker_router,
    nav=(
        NavItem(label="Overview", href="/", section="", order=0, key="o"),
        NavItem(label="Triage", href="/triage", section="triage", order=10, key="t"),
        NavItem(
            label="New issue",
            href="/issues/new",
            section="issues/new",
            order=90,
            min_role=Role.support,
            key="n",
        ),
    ),
)

PARTS: tuple[ConsolePart, ...] = (
    TRACKER,
    telemetry.PART,
    detection.PART,
    feedback.PART,
    integrations.PART,
    response.PART,
    oncall.PART,
    reviews.PART,
    digest.PART,
    launch.PART,
    status.PART,
)


class ServerTiming:
    """Adds `Server-Timing: app;dur=<ms>` to every response: the time from the request to
    its response headers, i.e. the page's server side without the transfer (browsers show
    it in the network panel; bench/web_pages.py reports it next to the wall time)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={ms:.1f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed)


def install(app: FastAPI, parts: tuple[ConsolePart, ...] = PARTS) -> None:
    """Add the console (pages, live stream, sign-in, static files) to `app`."""
    app.state.console = Console(parts)
    app.add_middleware(ServerTiming)
    app.include_router(signin.router)
    app.include_router(live.router)
    for part in parts:
        app.include_router(part.router)
    app.mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = "/signin?" + urlencode({"next": exc.next_path})
        if is_htmx(request):
            # a fragment request from an expired session: send the whole page to sign-in
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.url.path == "/live":
            return Response(status_code=401, headers=SECURITY_HEADERS)
        return RedirectResponse(target, status_code=303)

    async def page(request: Request, status: int, message: str) -> Response:
        if is_htmx(request):
            body = f'<p class="flash error" role="alert">{escape(message)}</p>'
            return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
        console = console_of(request)
        ctx = console.context(request, None, "", status=status, message=message)
        return console.render(request, "error.html", ctx, status=status)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return await page(request, exc.status, exc.message)

    # FastAPI's own 404/405/422 (an unknown URL, `/issues/abc`) are JSON for API clients
    # (as `hypercare.api.errors` answers them) and pages for a browser

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not wants_page(request.url.path, request.headers.get("accept", ""), is_htmx(request)):
            return await api_errors.http_error(request, exc)
        message = {
            404: "There is no page at this address. Check the link, or start from the overview.",
            405: "This address does not take that kind of request.",
        }.get(exc.status_code, str(exc.detail))
        response = await page(request, exc.status_code, message)
        if exc.status_code == 405:
            response.headers["Allow"] = api_errors.allowed_methods(request)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not wants_page(request.url.path, request.headers.get("accept", ""), is_htmx(request)):
            return await api_errors.invalid_request(request, exc)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
            for e in exc.errors()[:5]
        )
        return await page(request, 422, f"This address is not valid: {problems}.")

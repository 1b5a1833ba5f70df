"""Signing in with an API token and out again.

The token is checked once, at sign-in; the browser then holds only a random session id in
an HttpOnly cookie. The sign-in form itself is protected against login CSRF by a nonce
in a short-lived cookie that the form must echo (double submit).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from hypercare.api.deps import Db, State
from hypercare.auth import service as auth_service
from hypercare.errors import Unauthenticated
from hypercare.web import rules, sessions
from hypercare.web.console import console_of
from hypercare.web.deps import ConsoleUser, CsrfUser

router = APIRouter(include_in_schema=False)

_NONCE_AGE = 3600


def _signin_page(request: Request, next_path: str, *, error: str | None, status: int) -> Response:
    console = console_of(request)
    nonce = rules.new_secret()
    response = console.render(
        request,
        "signin.html",
        console.context(request, None, nonce, next=next_path, error=error),
        status=status,
    )
    response.set_cookie(
        rules.SIGNIN_COOKIE,
        nonce,
        max_age=_NONCE_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/signin",
    )
    return response


@router.get("/signin")
async def signin_form(request: Request, next: str | None = None) -> Response:
    return _signin_page(request, rules.safe_next(next), error=None, status=200)


@router.post("/signin")
async def signin(
    request: Request,
    state: State,
    session: Db,
    token: Annotated[str, Form(max_length=512)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    target = rules.safe_next(next)
    if not rules.same(csrf, request.cookies.get(rules.SIGNIN_COOKIE)):
        return _signin_page(
            request,
            target,
            error="The sign-in form expired; it has been reloaded, please try again.",
            status=403,
        )
    if not token.strip():
        return _signin_page(request, target, error="Paste your API token.", status=422)
    try:
        principal = await auth_service.authenticate(session=session, token=token.strip())
    except Unauthenticated:
        return _signin_page(
            request,
            target,
            error="That token is not valid or was revoked. Ask an admin for a token "
            "(`hypercare token create --role viewer --name you`).",
            status=401,
        )
    ttl = state.config.web.session_ttl
    sid = await sessions.open_session(session=session, principal=principal, ttl=ttl)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        rules.SESSION_COOKIE,
        sid,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=rules.cookie_secure(state.config.web.cookie_secure, request.url.scheme),
        path="/",
    )
    response.delete_cookie(rules.SIGNIN_COOKIE, path="/signin")
    return response


@router.get("/signout")
async def signout_form(request: Request, user: ConsoleUser) -> Response:
    """A confirmation page: signing out changes state, so it takes a POST with the token."""
    console = console_of(request)
    return console.render(
        request, "signout.html", console.context(request, user.principal, user.csrf)
    )


@router.post("/signout")
async def signout(request: Request, session: Db, user: CsrfUser) -> Response:
    await sessions.close_session(session=session, sid=user.sid)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(rules.SESSION_COOKIE, path="/")
    return response

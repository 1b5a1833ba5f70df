"""Signing in and out: cookies, CSRF on the sign-in form, expiry and revocation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.web.models import ConsoleSession
from hypercare.web.rules import hash_sid
from tests.web.conftest import Browser, sign_in


def _client(app: FastAPI, base: str = "http://console") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


async def test_pages_redirect_to_signin_when_signed_out(app: FastAPI) -> None:
    async with _client(app) as http:
        for path in ("/", "/triage", "/issues/1", "/issues/new", "/overview/live"):
            r = await http.get(path)
            assert r.status_code == 303
            assert r.headers["location"].startswith("/signin?next=")
        r = await http.get("/triage", headers={"HX-Request": "true"})
        assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/signin")
        r = await http.get("/live")
        assert r.status_code == 401


async def test_signin_sets_a_session_cookie_that_is_not_the_token(
    app: FastAPI, state: AppState, tokens: dict[Role, str]
) -> None:
    async with _client(app) as http:
        r = await sign_in(http, tokens[Role.viewer])
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("hc_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http here; see the https test
        sid = http.cookies.get("hc_session")
        assert sid and tokens[Role.viewer] not in cookie
        async with state.sessions() as s:
            rows = list(await s.scalars(select(ConsoleSession)))
        assert [row.sid_hash for row in rows] == [hash_sid(sid)]
        page = await http.get("/")
        assert page.status_code == 200 and "viewer-user" in page.text


async def test_cookie_is_secure_over_https(app: FastAPI, tokens: dict[Role, str]) -> None:
    async with _client(app, "https://console") as http:
        r = await sign_in(http, tokens[Role.viewer])
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("hc_session="))
        assert "Secure" in cookie


async def test_signin_rejects_bad_token_and_missing_nonce(
    app: FastAPI, tokens: dict[Role, str]
) -> None:
    async with _client(app) as http:
        r = await sign_in(http, "hc_wrong")
        assert r.status_code == 401 and "not valid" in r.text and "hc_session" not in http.cookies
        # a cross-site form post has no sign-in nonce cookie: login CSRF is refused
        r = await http.post("/signin", data={"token": tokens[Role.admin], "csrf": "forged"})
        assert r.status_code == 403 and "hc_session" not in http.cookies
        r = await sign_in(http, "")
        assert r.status_code == 422


async def test_signin_only_redirects_inside_the_console(
    app: FastAPI, tokens: dict[Role, str]
) -> None:
    async with _client(app) as http:
        await http.get("/signin")
        nonce = http.cookies.get("hc_signin", path="/signin") or ""
        data = {"token": tokens[Role.viewer], "csrf": nonce, "next": "//evil.example/x"}
        r = await http.post("/signin", data=data)
        assert r.status_code == 303 and r.headers["location"] == "/"


async def test_signout_needs_csrf_and_ends_the_session(
    browser_for: Callable[[Role], Awaitable[Browser]], state: AppState
) -> None:
    b = await browser_for(Role.viewer)
    r = await b.http.post("/signout", data={})
    assert r.status_code == 403
    assert (await b.http.get("/")).status_code == 200
    r = await b.http.get("/signout")
    assert r.status_code == 200 and "Sign out" in r.text
    r = await b.post("/signout", {})
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    assert (await b.http.get("/")).status_code == 303
    async with state.sessions() as s:
        assert list(await s.scalars(select(ConsoleSession))) == []


async def test_revoked_token_and_expired_session_sign_out(
    browser_for: Callable[[Role], Awaitable[Browser]], state: AppState
) -> None:
    b = await browser_for(Role.viewer)
    async with state.sessions() as s, s.begin():
        row = await s.scalar(select(ConsoleSession))
        assert row is not None
        row.expires_at = row.created_at - timedelta(seconds=1)
    assert (await b.http.get("/")).status_code == 303

    b2 = await browser_for(Role.support)
    async with state.sessions() as s, s.begin():
        tokens = await auth_service.list_tokens(session=s)
        support = next(t for t in tokens if t.role == Role.support)
        await auth_service.revoke_token(session=s, token_id=support.id)
    assert (await b2.http.get("/triage")).status_code == 303

"""Console fixtures: the app in process, and signed-in clients per role."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from hypercare.api.app import create_app
from hypercare.api.state import AppState
from hypercare.auth.rules import Role

CSRF_META = re.compile(r'<meta name="hc-csrf" content="([^"]+)">')


@dataclass
class Browser:
    """An in-process client holding a console session, and that session's CSRF token."""

    http: httpx.AsyncClient
    csrf: str

    async def post(self, path: str, data: dict[str, str], **kw: object) -> httpx.Response:
        return await self.http.post(path, data={"csrf": self.csrf, **data}, **kw)  # type: ignore[arg-type]

    async def htmx(self, path: str, data: dict[str, str]) -> httpx.Response:
        headers = {"HX-Request": "true", "X-CSRF-Token": self.csrf}
        return await self.http.post(path, data=data, headers=headers)


async def sign_in(http: httpx.AsyncClient, token: str) -> httpx.Response:
    await http.get("/signin")
    nonce = http.cookies.get("hc_signin", path="/signin")
    return await http.post("/signin", data={"token": token, "csrf": nonce or "", "next": "/"})


def csrf_of(html: str) -> str:
    m = CSRF_META.search(html)
    assert m, "page has no CSRF meta tag"
    return m.group(1)


@pytest.fixture
def app(state: AppState) -> FastAPI:
    return create_app(state, background=False)


@pytest.fixture
async def browser_for(
    app: FastAPI, tokens: dict[Role, str]
) -> AsyncIterator[Callable[[Role], Awaitable[Browser]]]:
    opened: list[httpx.AsyncClient] = []

    async def make(role: Role) -> Browser:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")
        opened.append(http)
        r = await sign_in(http, tokens[role])
        assert r.status_code == 303, r.text
        page = await http.get("/")
        assert page.status_code == 200
        return Browser(http=http, csrf=csrf_of(page.text))

    yield make
    for http in opened:
        await http.aclose()


async def new_issue(browser: Browser, **fields: str) -> int:
    r = await browser.post("/issues/new", {"title": "Checkout fails", **fields})
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])

"""Errors mapped in one place: a client that leaves early is not a server error."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from sqlalchemy.exc import DBAPIError

from hypercare.api import errors


async def test_a_client_gone_before_its_body_is_a_quiet_400(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    errors.install(app)

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}  # the peer closed before sending its body

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-length", b"100")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8700),
    }
    with caplog.at_level(logging.INFO, logger="hypercare.api"):
        await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 400
    assert orjson.loads(body)["error"]["code"] == "client_disconnected"
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "left before its request body arrived" in caplog.records[0].getMessage()


async def test_a_lost_database_connection_is_a_503_to_retry_other_database_errors_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/lost")
    async def lost() -> None:
        raise DBAPIError(
            "SELECT 1", {}, ConnectionError("server closed"), connection_invalidated=True
        )

    @app.get("/broken")
    async def broken() -> None:
        raise DBAPIError("SELECT 1", {}, ValueError("bad value"))

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        with caplog.at_level(logging.WARNING, logger="hypercare.api"):
            answer = await client.get("/lost")
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["code"] == "store_unavailable"
        assert "connection was lost" in caplog.text
        other = await client.get("/broken")
        assert other.status_code == 500
        assert other.json()["error"]["code"] == "internal"

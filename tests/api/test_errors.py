"""Errors mapped in one place: a client that leaves early is not a server error."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from fastapi import FastAPI, Request

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

"""The widget's per-address rate limit behind the console's real HTTP server (uvicorn, as
`hypercare up` configures it): X-Forwarded-For only counts from `web.trusted_proxies`."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from hypercare.api.app import build_state, create_app
from hypercare.config import HypercareConfig
from hypercare.server import console_config
from tests.feedback.helpers import ALLOWED_ORIGIN, WIDGET_KEY, intake_config

WIDGET_URL = f"/api/v1/feedback?key={WIDGET_KEY}"


@asynccontextmanager
async def console(config: HypercareConfig, engine: AsyncEngine) -> AsyncIterator[str]:
    """The console app served by uvicorn on a loopback socket bound to port 0."""
    state = build_state(config, engine)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        console_config(
            create_app(state, background=False), "127.0.0.1", port, config.web.trusted_proxies
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 60
        while not server.started:  # uvicorn has a flag, no event
            if serving.done() or time.monotonic() > deadline:
                raise AssertionError("the console server did not start")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def post_from(base: str, addresses: list[str]) -> list[int]:
    body = {"category": "praise", "message": "nice"}
    async with httpx.AsyncClient(base_url=base) as c:
        return [
            (
                await c.post(
                    WIDGET_URL,
                    json=body,
                    headers={"origin": ALLOWED_ORIGIN, "x-forwarded-for": address},
                )
            ).status_code
            for address in addresses
        ]


async def test_forged_forwarded_for_does_not_reset_the_widget_limit(engine: AsyncEngine) -> None:
    async with console(intake_config(), engine) as base:
        statuses = await post_from(base, [f"198.51.100.{i}" for i in range(11)])
    # every request came from 127.0.0.1: one quota of 10, whatever the header claims
    assert statuses == [202] * 10 + [429]


async def test_forwarded_for_from_a_trusted_proxy_is_the_client(engine: AsyncEngine) -> None:
    base_config = intake_config()
    config = base_config.model_copy(
        update={"web": base_config.web.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]})}
    )
    async with console(config, engine) as base:
        statuses = await post_from(base, [f"198.51.100.{i}" for i in range(11)])
        again = await post_from(base, ["198.51.100.1"] * 10)
    assert statuses == [202] * 11  # eleven clients behind the proxy, one request each
    assert again[-1] == 429  # the second client's own quota runs out


def test_web_trusted_proxies_config() -> None:
    assert HypercareConfig().web.trusted_proxies == []
    with pytest.raises(ValueError, match="invalid trusted proxy"):
        HypercareConfig.model_validate({"web": {"trusted_proxies": ["not-an-address"]}})

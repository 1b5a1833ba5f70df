"""The APIs page shows external sources (malformed input with a sample) and suggests
routes from the catch-all's most frequent path templates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.telemetry import nodes
from tests.telemetry.otlp_factory import span, traces
from tests.web.conftest import Browser

PB = {"Content-Type": "application/x-protobuf"}


async def test_apis_page_lists_sources_and_suggested_routes(
    state: AppState, browser_for: Callable[[Role], Awaitable[Browser]]
) -> None:
    async with state.sessions() as s, s.begin():
        token = (await nodes.create_node_token(session=s, name="collector")).token
    viewer = await browser_for(Role.viewer)
    headers = {**PB, "Authorization": f"Bearer {token}"}
    body = traces([span(**{"url.path": f"/invoices/{n}"}) for n in range(3)]).SerializeToString()
    r = await viewer.http.post("/v1/traces", content=body, headers=headers)
    assert r.status_code == 200
    r = await viewer.http.post("/v1/traces", content=b"<html>oops", headers=headers)
    assert r.status_code == 400
    page = (await viewer.http.get("/apis")).text
    assert 'id="intake-sources"' in page and "otlp/traces" in page
    assert "&lt;html&gt;oops" in page  # the sample, escaped
    assert 'id="route-suggestions"' in page and "/invoices/{id}" in page
    assert "name: invoices.get" in page

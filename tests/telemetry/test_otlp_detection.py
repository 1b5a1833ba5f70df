"""Detection opens an issue for an external route whose spans start failing, with the
route's component, as it does for gateway routes."""

from __future__ import annotations

import time

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.detection.jobs import emit_findings, load_rules, runtime
from hypercare.telemetry import nodes
from tests.conftest import auth
from tests.telemetry.otlp_factory import span, traces


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(
        "external_routes:\n"
        "  - name: orders.get\n"
        "    match: {path: /orders/{id}, methods: [GET]}\n"
        "    tags: {component: orders}\n"
    )


async def test_failing_external_route_opens_an_issue(
    client: httpx.AsyncClient, state: AppState, tokens: dict[Role, str]
) -> None:
    async with state.sessions() as s, s.begin():
        token = (await nodes.create_node_token(session=s, name="collector")).token
    now = time.time()
    spans = [
        span(
            start=now - 30 + i * 0.1,
            error=i % 2 == 0,
            **{
                "http.request.method": "GET",
                "url.path": f"/orders/{i}",
                "http.response.status_code": 503 if i % 2 == 0 else 200,
            },
        )
        for i in range(300)
    ]
    r = await client.post(
        "/v1/traces",
        content=traces(spans, service="orders-svc").SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", **auth(token)},
    )
    assert r.status_code == 200, r.text
    await load_rules(state)
    rt = runtime(state)
    findings = rt.detector.tick(now) + rt.detector.tick(now + 5)
    assert any(f.route == "orders.get" and f.kind == "fire" for f in findings), findings
    await emit_findings(state, findings)
    viewer = auth(tokens[Role.viewer])
    signals = (await client.get("/api/v1/signals", headers=viewer)).json()["items"]
    fired = [s for s in signals if s["route"] == "orders.get" and s["issue_id"]]
    assert fired, signals
    issue = (await client.get(f"/api/v1/issues/{fired[0]['issue_id']}", headers=viewer)).json()
    assert issue["component"] == "orders"

"""`POST /api/v1/ingest/{format}`: Kong's http-log and APISIX's http-logger pushing to the
console, through the same ingest as a gateway node's batches."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.telemetry import nodes
from tests.conftest import auth

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(
        "external_routes:\n"
        "  - name: example\n"
        "    match: {path: /example-route, methods: [GET]}\n"
        "    tags: {component: examples}\n"
    )


@pytest.fixture
async def node_token(state: AppState) -> str:
    async with state.sessions() as s, s.begin():
        return (await nodes.create_node_token(session=s, name="kong-1")).token


async def test_kong_http_log_is_stored_under_its_external_route(
    client: httpx.AsyncClient, node_token: str, tokens: dict[Role, str]
) -> None:
    entry = json.loads((SAMPLES / "kong_http_log_3_8.json").read_text())
    now = time.time()
    entry["started_at"] = int(now * 1000)  # the sample's 2024 call is past call retention
    body = json.dumps(entry).encode()
    r = await client.post("/api/v1/ingest/kong", content=body, headers=auth(node_token))
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and r.json()["rejected"] == 0
    # Kong re-sending the same body after a lost answer: stored once
    again = await client.post("/api/v1/ingest/kong", content=body, headers=auth(node_token))
    assert again.json()["duplicate"] is True
    viewer = auth(tokens[Role.viewer])
    call = await client.get("/api/v1/calls/2f6946328ffc4946b8c9120704a4a155", headers=viewer)
    assert call.status_code == 200, call.text
    assert call.json()["route"] == "example"
    routes = await client.get(
        "/api/v1/analytics/routes",
        params={"from": str(int(now - 60)), "to": str(int(now + 60))},
        headers=viewer,
    )
    assert [row["key"] for row in routes.json()["rows"]] == ["example"]


async def test_apisix_batches_and_bad_entries_are_counted(
    client: httpx.AsyncClient, node_token: str, tokens: dict[Role, str]
) -> None:
    entries = json.loads((SAMPLES / "apisix_http_logger_default.json").read_text())
    body = json.dumps([*entries, {"hello": "world"}]).encode()
    r = await client.post("/api/v1/ingest/apisix", content=body, headers=auth(node_token))
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1)
    assert "request" in r.json()["reason"]
    r = await client.post("/api/v1/ingest/apisix", content=b"nope", headers=auth(node_token))
    assert r.status_code == 422 and "APISIX" in r.json()["error"]["message"]
    viewer = auth(tokens[Role.viewer])
    seen = (await client.get("/api/v1/telemetry/unparsed", headers=viewer)).json()["sources"]
    assert [(s["source"], s["total"], s["sample"]) for s in seen] == [("apisix kong-1", 2, "nope")]
    metrics = (await client.get("/metrics", headers=viewer)).text
    assert 'hypercare_telemetry_unparsed_lines_total{source="apisix kong-1"} 2' in metrics


async def test_pushing_needs_a_node_token_and_a_known_format(
    client: httpx.AsyncClient, node_token: str, tokens: dict[Role, str]
) -> None:
    body = (SAMPLES / "kong_http_log_3_8.json").read_bytes()
    assert (await client.post("/api/v1/ingest/kong", content=body)).status_code == 401
    r = await client.post("/api/v1/ingest/kong", content=body, headers=auth(tokens[Role.admin]))
    assert r.status_code == 403
    r = await client.post("/api/v1/ingest/haproxy", content=body, headers=auth(node_token))
    assert r.status_code == 422 and "nginx-json" in r.json()["error"]["message"]

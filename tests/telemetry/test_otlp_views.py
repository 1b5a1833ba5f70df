"""The OTLP/HTTP receiver over the console API, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.telemetry import nodes
from hypercare.telemetry.external import CATCH_ALL
from hypercare.telemetry.otlp_views import intake_of
from tests.conftest import auth
from tests.telemetry.otlp_factory import logs, span, traces

PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config(
        """
external_routes:
  - name: orders.get
    match:
      path: /orders/{id}
      methods: [GET]
    tags: {component: orders}
telemetry:
  otlp:
    consumer_attribute: app.tenant
    max_body_mb: 1
"""
    )


@pytest.fixture
async def node_token(state: AppState) -> str:
    async with state.sessions() as s, s.begin():
        return (await nodes.create_node_token(session=s, name="otel-collector")).token


def _orders_span(status: int = 200, **extra: object) -> object:
    return span(
        **{
            "http.request.method": "GET",
            "url.path": "/orders/42",
            "http.response.status_code": status,
            "app.tenant": "acme",
            **extra,
        }
    )


async def test_protobuf_gzip_export_reaches_analytics_and_call_search(
    client: httpx.AsyncClient, tokens: dict[Role, str], node_token: str
) -> None:
    s = _orders_span(503)
    body = gzip.compress(traces([s, span(**{"url.path": "/carts/77"})]).SerializeToString())
    r = await client.post(
        "/v1/traces", content=body, headers={**PB, "Content-Encoding": "gzip", **auth(node_token)}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
    viewer = auth(tokens[Role.viewer])
    rows = (await client.get("/api/v1/analytics/routes", headers=viewer)).json()["rows"]
    by_route = {row["key"]: row for row in rows}
    assert by_route["orders.get"]["requests"] == 1, rows
    assert by_route[CATCH_ALL]["requests"] == 1
    found = await client.get("/api/v1/calls", params={"trace_id": s.trace_id.hex()}, headers=viewer)
    (call,) = found.json()["items"]
    assert call["route"] == "orders.get" and call["status"] == 503
    assert call["consumer"] == "acme" and call["upstream"] == "shop"
    # the catch-all's template is suggested as a route
    intake = (await client.get("/api/v1/telemetry/intake", headers=viewer)).json()
    assert intake["external_routes"] == ["orders.get"]
    (suggestion,) = intake["suggestions"]
    assert suggestion["path_template"] == "/carts/{id}"
    assert suggestion["config"]["match"] == {"path": "/carts/{id}", "methods": ["GET"]}
    (source,) = intake["sources"]
    assert (source["source"], source["items"], source["calls"]) == ("otlp/traces", 2, 2)


async def test_json_export_and_retry_counted_once(
    client: httpx.AsyncClient, tokens: dict[Role, str], node_token: str
) -> None:
    s = _orders_span()
    doc = json_format.MessageToDict(traces([s]))
    sp = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    sp["traceId"], sp["spanId"] = s.trace_id.hex(), s.span_id.hex()
    body = json.dumps(doc).encode()
    headers = {"Content-Type": "application/json", **auth(node_token)}
    for _ in range(2):  # a collector retrying the same export
        r = await client.post("/v1/traces", content=body, headers=headers)
        assert r.status_code == 200 and r.json() == {}, r.text
    found = await client.get(
        "/api/v1/calls", params={"trace_id": s.trace_id.hex()}, headers=auth(tokens[Role.viewer])
    )
    assert len(found.json()["items"]) == 1


async def test_partial_success_for_refused_spans(
    client: httpx.AsyncClient, node_token: str
) -> None:
    body = traces([_orders_span(), span(start=5.0)]).SerializeToString()
    r = await client.post("/v1/traces", content=body, headers={**PB, **auth(node_token)})
    assert r.status_code == 200
    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 1 and "Unix time" in partial.error_message


async def test_logs_export(client: httpx.AsyncClient, state: AppState, node_token: str) -> None:
    req = logs([{"url.path": "/orders/1", "http.response.status_code": 200}])
    r = await client.post(
        "/v1/logs", content=req.SerializeToString(), headers={**PB, **auth(node_token)}
    )
    assert r.status_code == 200, r.text
    assert intake_of(state).sources["otlp/logs"].calls == 1


async def test_bad_input_is_refused_counted_and_sampled(
    client: httpx.AsyncClient, tokens: dict[Role, str], node_token: str
) -> None:
    token = auth(node_token)
    r = await client.post("/v1/traces", content=b"\xff\xffgarbage", headers={**PB, **token})
    assert r.status_code == 400
    assert "not an OTLP protobuf" in status_pb2.Status.FromString(r.content).message
    r = await client.post(
        "/v1/traces", content=b"{oops", headers={"Content-Type": "application/json", **token}
    )
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    r = await client.post("/v1/traces", content=b"x", headers={"Content-Type": "text/csv", **token})
    assert r.status_code == 415
    r = await client.post(
        "/v1/traces", content=b"x", headers={**PB, "Content-Encoding": "br", **token}
    )
    assert r.status_code == 415
    r = await client.post("/v1/traces", content=b"\0" * (2 << 20), headers={**PB, **token})
    assert r.status_code == 413
    bomb = gzip.compress(b"\0" * (70 << 20))
    r = await client.post(
        "/v1/traces", content=bomb, headers={**PB, "Content-Encoding": "gzip", **token}
    )
    assert r.status_code == 413
    viewer = auth(tokens[Role.viewer])
    (source,) = (await client.get("/api/v1/telemetry/intake", headers=viewer)).json()["sources"]
    assert source["malformed"] == 5 and source["last_error"]
    metrics = (await client.get("/metrics", headers=viewer)).text
    assert 'hypercare_intake_malformed_total{source="otlp/traces"} 5' in metrics
    r = await client.post("/v1/traces", content=b"{oops", headers={**PB, **token})
    (source,) = (await client.get("/api/v1/telemetry/intake", headers=viewer)).json()["sources"]
    assert source["last_sample"] == "{oops"


async def test_only_ingest_tokens_export(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    body = traces([_orders_span()]).SerializeToString()
    r = await client.post("/v1/traces", content=body, headers=PB)
    assert r.status_code == 401
    r = await client.post("/v1/traces", content=body, headers={**PB, **auth(tokens[Role.admin])})
    assert r.status_code == 403
    r = await client.get("/api/v1/telemetry/intake")
    assert r.status_code == 401


async def test_overload_answers_429_with_retry_after(
    client: httpx.AsyncClient, state: AppState, node_token: str
) -> None:
    intake = intake_of(state)
    body = traces([_orders_span()]).SerializeToString()
    held = 0
    while not intake.slots.locked():
        await intake.slots.acquire()
        held += 1
    try:
        r = await client.post("/v1/traces", content=body, headers={**PB, **auth(node_token)})
        assert r.status_code == 429 and r.headers["retry-after"]
        assert status_pb2.Status.FromString(r.content).message
    finally:
        for _ in range(held):
            intake.slots.release()
    r = await client.post("/v1/traces", content=body, headers={**PB, **auth(node_token)})
    assert r.status_code == 200


async def test_store_unavailable_answers_503_with_retry_after(
    client: httpx.AsyncClient, state: AppState, node_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from hypercare.telemetry.jobs import collector_of

    async def down(*_: object) -> tuple[int, bool]:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(collector_of(state), "ingest", down)
    body = traces([_orders_span()]).SerializeToString()
    r = await client.post("/v1/traces", content=body, headers={**PB, **auth(node_token)})
    assert r.status_code == 503 and r.headers["retry-after"]
    assert "retry" in status_pb2.Status.FromString(r.content).message


async def test_a_big_export_is_decoded_off_the_loop_and_stored(
    client: httpx.AsyncClient, state: AppState, node_token: str
) -> None:
    body = traces([_orders_span() for _ in range(1500)]).SerializeToString()
    assert 64 << 10 < len(body) < 1 << 20
    r = await client.post("/v1/traces", content=body, headers={**PB, **auth(node_token)})
    assert r.status_code == 200, r.text
    assert intake_of(state).sources["otlp/traces"].calls == 1500

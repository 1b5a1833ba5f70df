"""The telemetry HTTP API: ingest with node tokens, analytics, call detail, /metrics."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.gateway.records import CallRecord
from hypercare.telemetry import nodes
from hypercare.telemetry.capture import CallCapture
from hypercare.telemetry.jobs import collector_of
from hypercare.telemetry.wire import encode_batch
from tests.conftest import auth
from tests.telemetry.factory import record

INGEST = "/api/v1/internal/telemetry"


@pytest.fixture
async def node_token(state: AppState) -> str:
    async with state.sessions() as s, s.begin():
        return (await nodes.create_node_token(session=s, name="edge-1")).token


async def ship(
    client: httpx.AsyncClient,
    token: str,
    records: list[CallRecord],
    captures: dict[int, CallCapture] | None = None,
    key: str | None = None,
) -> httpx.Response:
    body = encode_batch(key or uuid.uuid4().hex, records, captures, sent_at=time.time())
    return await client.post(INGEST, content=body, headers=auth(token))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def test_only_node_tokens_ingest_and_node_tokens_read_nothing(
    client: httpx.AsyncClient, tokens: dict[Role, str], node_token: str
) -> None:
    recs = [record(time.time())]
    r = await ship(client, node_token, recs)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    for role in (Role.viewer, Role.admin):
        r = await ship(client, tokens[role], recs)
        assert r.status_code == 403 and "node token" in r.json()["error"]["message"]
    r = await client.post(INGEST, content=b"{}")
    assert r.status_code == 401
    r = await ship(client, "hcn_not-a-token", recs)
    assert r.status_code == 401
    for path in ("/api/v1/analytics/routes", "/api/v1/calls", "/metrics", "/api/v1/issues"):
        r = await client.get(path, headers=auth(node_token))
        assert r.status_code == 401, path
        r = await client.get(path)
        assert r.status_code == 401, path


async def test_bad_batches_are_rejected_with_what_is_wrong(
    client: httpx.AsyncClient, node_token: str
) -> None:
    cases: list[tuple[bytes, str]] = [
        (b"not json", "not valid JSON"),
        (b'{"v": 2}', '"v": 1'),
        (b'{"v": 1, "batch": "x", "records": []}', '"batch"'),
        (b'{"v": 1, "batch": "abcdefgh", "records": [[1, 2]]}', "records[0]"),
        (
            b'{"v": 1, "batch": "abcdefgh", "records": '
            b'[[1.0, "r", "c", "GET", "/", "/", "200", 0, 0, "", 0, 0, 0, "", "", "", ""]]}',
            "(status)",
        ),
        (
            b'{"v": 1, "batch": "abcdefgh", "records": '
            b'[[NaN, "r", "c", "GET", "/", "/", 200, 0, 0, "", 0.0, 0.0, 0.0, "", "", "", ""]]}',
            "not a Unix time",
        ),
        (
            b'{"v": 1, "batch": "abcdefgh", "records": '
            b'[[1764236400.0, "r", "c", "GET", "/", "/", 200, 0, 0, "", 0.0, 0.0, -1.0,'
            b' "", "", "", ""]]}',
            "total_ms",
        ),
    ]
    for body, expected in cases:
        r = await client.post(INGEST, content=body, headers=auth(node_token))
        assert r.status_code == 422, body
        assert expected in r.json()["error"]["message"], r.json()
    r = await client.post(INGEST, content=b"x" * (2 * 1024 * 1024), headers=auth(node_token))
    assert r.status_code == 413


async def test_routes_timeseries_and_trends(
    client: httpx.AsyncClient, tokens: dict[Role, str], node_token: str, state: AppState
) -> None:
    now = time.time()
    minute = int(now // 60) * 60
    recs = [record(minute - 120 + i % 60, total_ms=10) for i in range(60)]
    recs += [record(minute - 60 + i % 60, status=500 if i < 6 else 200) for i in range(60)]
    recs += [record(minute + 1, route="search", status=429, error="rate_limited")]
    assert (await ship(client, node_token, recs)).status_code == 200
    await collector_of(state).flush(now)
    v = auth(tokens[Role.viewer])
    r = await client.get(
        "/api/v1/analytics/routes",
        params={"from": iso(minute - 600), "to": iso(now)},
        headers=v,
    )
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()["rows"]}
    assert rows["orders"]["requests"] == 120 and rows["orders"]["c5xx"] == 6
    assert rows["orders"]["error_rate"] == pytest.approx(6 / 120)
    assert rows["orders"]["p50_ms"] == pytest.approx(10, rel=0.01)
    assert rows["search"]["rate_limited"] == 1
    assert rows["search"]["top_errors"] == [["rate_limited", 1]]
    r = await client.get("/api/v1/analytics/consumers", headers=v)
    assert r.json()["rows"][0]["key"] == "shop"

    r = await client.get(
        "/api/v1/analytics/timeseries",
        params={
            "route": "orders",
            "metric": "5xx",
            "from": iso(minute - 180),
            "to": iso(minute),
            "step": "1m",
        },
        headers=v,
    )
    assert r.status_code == 200, r.text
    assert [p["value"] for p in r.json()["points"]] == [0, 0, 6]
    for metric in ("requests", "rps", "error_rate", "4xx", "p50", "p95", "p99"):
        r = await client.get(
            "/api/v1/analytics/timeseries",
            params={"target": "10.0.0.1:8080", "metric": metric, "step": "5m"},
            headers=v,
        )
        assert r.status_code == 200, (metric, r.text)
    for params in (
        {"metric": "requests"},
        {"route": "orders", "consumer": "shop"},
        {"route": "orders", "metric": "median"},
        {"route": "orders", "step": "30s"},
        {"route": "orders", "step": "soon"},
        {"route": "orders", "from": iso(now), "to": iso(now - 60)},
    ):
        r = await client.get("/api/v1/analytics/timeseries", params=params, headers=v)
        assert r.status_code == 422, params
        assert r.json()["error"]["message"]

    r = await client.get(
        "/api/v1/analytics/trends", params={"route": "orders", "window": "1m"}, headers=v
    )
    assert r.status_code == 200, r.text
    trend = {m["metric"]: m for m in r.json()["metrics"]}
    assert set(trend) >= {"rps", "error_rate", "p95", "5xx"}
    r = await client.get(
        "/api/v1/analytics/trends", params={"route": "orders", "window": "30d"}, headers=v
    )
    assert r.status_code == 422


async def test_calls_filters_pagination_and_detail(
    client: httpx.AsyncClient, tokens: dict[Role, str], node_token: str
) -> None:
    now = time.time()
    recs = [record(now - 100 + i, request_id=f"req-{i:03d}") for i in range(25)]
    recs.append(record(now - 5, route="pay", status=503, error="timeout", request_id="boom"))
    cap = CallCapture((("Authorization", "Bearer x"),), (), b'{"password": "p"}', b"")
    assert (await ship(client, node_token, recs, {25: cap})).status_code == 200
    v = auth(tokens[Role.viewer])

    async def get(**params: Any) -> dict[str, Any]:
        r = await client.get("/api/v1/calls", params=params, headers=v)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    seen: list[str] = []
    cursor = None
    while True:
        page = await get(route="orders", limit=10, **({"cursor": cursor} if cursor else {}))
        seen += [c["request_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"req-{i:03d}" for i in reversed(range(25))]
    assert [c["request_id"] for c in (await get(status="5xx"))["items"]] == ["boom"]
    assert [c["request_id"] for c in (await get(status="503"))["items"]] == ["boom"]
    assert [c["request_id"] for c in (await get(error="any"))["items"]] == ["boom"]
    assert [c["request_id"] for c in (await get(error="timeout"))["items"]] == ["boom"]
    assert (await get(consumer="nobody"))["items"] == []
    assert len((await get(**{"from": iso(now - 90), "to": iso(now - 80)}))["items"]) == 10
    one = (await get(request_id="req-003"))["items"][0]
    assert (await get(trace_id=one["trace_id"]))["items"][0]["request_id"] == "req-003"

    r = await client.get("/api/v1/calls/boom", headers=v)
    assert r.status_code == 200
    detail = r.json()
    assert detail["error"] == "timeout" and detail["upstream"] == "orders-svc"
    assert (
        "Bearer" not in r.text and '"password": "[REDACTED]"' in detail["capture"]["request_body"]
    )
    assert (await client.get("/api/v1/calls/nope", headers=v)).status_code == 404
    # `at` says when to look first
    hinted = await client.get("/api/v1/calls/boom", params={"at": iso(now)}, headers=v)
    assert hinted.status_code == 200 and hinted.json()["request_id"] == "boom"
    bad = await client.get("/api/v1/calls/boom", params={"at": "yesterday"}, headers=v)
    assert bad.status_code == 422
    for params in ({"status": "9xx"}, {"cursor": "garbage!"}, {"limit": 0}):
        r = await client.get("/api/v1/calls", params=params, headers=v)
        assert r.status_code == 422, params


async def test_metrics_exposition(
    client: httpx.AsyncClient, tokens: dict[Role, str], node_token: str
) -> None:
    body = encode_batch(
        uuid.uuid4().hex, [record(time.time())], sent_at=time.time(), dropped_total=7, spool_bytes=9
    )
    await client.post(INGEST, content=body, headers=auth(node_token))
    await client.post(INGEST, content=body, headers=auth(node_token))
    r = await client.get("/metrics", headers=auth(tokens[Role.viewer]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "hypercare_telemetry_ingested_records_total 1\n" in text
    assert "hypercare_telemetry_duplicate_batches_total 1\n" in text
    assert 'hypercare_telemetry_dropped_total{node="edge-1"} 7\n' in text
    assert 'hypercare_telemetry_spool_bytes{node="edge-1"} 9\n' in text
    assert "hypercare_telemetry_store_write_seconds_count 1\n" in text
    assert "# TYPE hypercare_telemetry_batch_lag_seconds gauge" in text
    assert 'hypercare_telemetry_histogram_cache_lookups_total{result="hit"} 0\n' in text
    assert "# TYPE hypercare_telemetry_histogram_cache_bytes gauge" in text

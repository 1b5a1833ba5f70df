"""A real peer: a small service instrumented with the OpenTelemetry Python SDK exports its
server spans over OTLP/HTTP (protobuf, gzip) to the receiver in `hypercare up`; the calls
appear in the route analytics and the call search by trace id."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.support import Up, start_up, wait_until

HYPERCARE = (sys.executable, "-m", "hypercare")
ADMIN = "hc_otlp-peer-admin-token"
H = {"Authorization": f"Bearer {ADMIN}"}
CONFIG = """
external_routes:
  - name: orders.get
    match:
      path: /orders/{id}
      methods: [GET]
    tags: {component: orders}
telemetry:
  otlp:
    consumer_attribute: app.customer
"""


class Service:
    """A tiny HTTP service whose handler opens a SERVER span per request, as an
    instrumentation library would (semantic-convention attributes)."""

    def __init__(self, provider: TracerProvider) -> None:
        tracer = provider.get_tracer("test-service")
        self.trace_ids: dict[str, str] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                failing = self.path.endswith("/13")
                status = 500 if failing else 200
                with tracer.start_as_current_span(
                    "GET /orders/{id}",
                    kind=SpanKind.SERVER,
                    attributes={
                        "http.request.method": "GET",
                        "url.path": self.path,
                        "http.route": "/orders/{id}",
                        "server.address": "shop.example.com",
                        "client.address": self.client_address[0],
                        "app.customer": "acme",
                        "http.response.status_code": status,
                    },
                ) as span:
                    if failing:
                        span.record_exception(TimeoutError("the database timed out"))
                        span.set_status(Status(StatusCode.ERROR))
                    service.trace_ids[self.path] = format(span.get_span_context().trace_id, "032x")
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    cfg = tmp_path / "hypercare.yaml"
    cfg.write_text(CONFIG)
    running = start_up(
        tmp_path / "data", config=cfg, args=["--workers", "0"], env={"HYPERCARE_ADMIN_TOKEN": ADMIN}
    )
    try:
        yield running
    finally:
        running.stop()


def node_token(data_dir: Path) -> str:
    """The token `hypercare telemetry node-token` prints."""
    out = subprocess.run(
        [*HYPERCARE, "telemetry", "node-token", "--name", "otel-sdk", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def test_sdk_spans_reach_analytics_and_call_search(up: Up, tmp_path: Path) -> None:
    token = node_token(tmp_path / "data")
    exporter = OTLPSpanExporter(
        endpoint=f"{up.url}/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        compression=Compression.Gzip,
        timeout=30,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "orders-svc"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    service = Service(provider)
    try:
        with httpx.Client(base_url=service.url, timeout=30) as c:
            for n in range(10, 20):
                c.get(f"/orders/{n}")
        assert provider.force_flush(60_000)
    finally:
        service.close()
        provider.shutdown()

    def routes() -> dict[str, Any]:
        r = httpx.get(f"{up.url}/api/v1/analytics/routes", headers=H, timeout=30)
        return {row["key"]: row for row in r.json()["rows"]}

    wait_until(lambda: routes().get("orders.get", {}).get("requests") == 10, 60, "spans as calls")
    row = routes()["orders.get"]
    assert row["c5xx"] == 1 and row["upstream_errors"] == 1 and row["p50_ms"], row
    failed = service.trace_ids["/orders/13"]
    r = httpx.get(f"{up.url}/api/v1/calls", params={"trace_id": failed}, headers=H, timeout=30)
    (call,) = r.json()["items"]
    assert call["route"] == "orders.get" and call["path_template"] == "/orders/{id}"
    assert call["status"] == 500 and call["error"] == "timeout"
    assert call["upstream"] == "orders-svc" and call["consumer"] == "acme"
    assert call["trace_id"] == failed

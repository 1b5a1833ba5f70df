"""OTLP export requests for tests, built with the official protobuf messages."""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def span(
    *,
    start: float | None = None,
    ms: float = 12.5,
    kind: int = Span.SPAN_KIND_SERVER,
    error: bool = False,
    exception: str | None = None,
    trace_id: bytes | None = None,
    **attrs: Any,
) -> Span:
    start = time.time() if start is None else start
    s = Span(
        trace_id=trace_id or os.urandom(16),
        span_id=os.urandom(8),
        name="GET",
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=int(start * 1e9),
        end_time_unix_nano=int(start * 1e9) + int(ms * 1e6),
        attributes=[kv(k.replace("__", "."), v) for k, v in attrs.items()],
    )
    if error:
        s.status.code = Status.STATUS_CODE_ERROR
    if exception:
        ev = s.events.add()
        ev.name = "exception"
        ev.attributes.append(kv("exception.type", exception))
    return s


def traces(spans: list[Span], service: str | None = "shop") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    if service is not None:
        rs.resource.attributes.append(kv("service.name", service))
    rs.scope_spans.add().spans.extend(spans)
    return req


def logs(records: list[dict[str, Any]], service: str = "edge") -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", service))
    sl = rl.scope_logs.add()
    for attrs in records:
        lr = sl.log_records.add()
        lr.time_unix_nano = int(attrs.pop("time", time.time()) * 1e9)
        lr.attributes.extend(kv(k, v) for k, v in attrs.items())
    return req

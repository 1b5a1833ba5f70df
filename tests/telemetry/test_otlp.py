import gzip
import json
import time
import zlib

import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from hypercare.telemetry import otlp
from hypercare.telemetry.external import CATCH_ALL, ExternalRouteConfig, ExternalRoutes
from tests.telemetry.otlp_factory import logs, span, traces

ROUTES = ExternalRoutes.from_config(
    [
        ExternalRouteConfig.model_validate(
            {"name": "orders.get", "match": {"path": "/orders/{id}", "methods": ["GET"]}}
        )
    ]
)


def test_server_span_becomes_a_call() -> None:
    now = time.time()
    s = span(
        start=now,
        ms=25.0,
        **{
            "http.request.method": "GET",
            "url.path": "/orders/42",
            "http.route": "/orders/{id}",
            "http.response.status_code": 200,
            "enduser.id": "acme",
            "client.address": "10.1.2.3",
            "user_agent.original": "curl/8",
        },
    )
    out = otlp.calls_of_traces(traces([s]), ROUTES, "enduser.id")
    assert out.spans == 1 and out.rejected == 0
    (r,) = out.records
    assert r.route == "orders.get" and r.path_template == "/orders/{id}"
    assert r.path == "/orders/42" and r.method == "GET" and r.status == 200
    assert r.consumer == "acme" and r.client_ip == "10.1.2.3" and r.user_agent == "curl/8"
    assert r.total_ms == pytest.approx(25.0) and r.time == pytest.approx(now, abs=1e-6)
    assert r.trace_id == s.trace_id.hex() and r.request_id == s.span_id.hex()
    assert r.upstream == "shop" and r.target == "shop" and r.error == ""


def test_old_attribute_names_and_http_route_only() -> None:
    s = span(**{"http.method": "post", "http.route": "/orders/{id}", "http.status_code": 503})
    (r,) = otlp.calls_of_traces(traces([s]), ROUTES, "enduser.id").records
    # a POST matches no declared route: catch-all with the span's template
    assert (r.route, r.path_template, r.method, r.status) == (
        CATCH_ALL,
        "/orders/{id}",
        "POST",
        503,
    )


def test_which_spans_are_calls() -> None:
    internal = span(kind=Span.SPAN_KIND_INTERNAL)
    client_http = span(kind=Span.SPAN_KIND_CLIENT, **{"url.path": "/x/123"})
    server_bare = span(error=True)
    out = otlp.calls_of_traces(traces([internal, client_http, server_bare]), ROUTES, "x")
    assert out.spans == 3
    assert [(r.route, r.path_template, r.status) for r in out.records] == [
        (CATCH_ALL, "/x/{id}", 200),
        (CATCH_ALL, "/", 500),
    ]


@pytest.mark.parametrize(
    ("exception", "status", "kind"),
    [
        ("requests.exceptions.ReadTimeout", 504, "timeout"),
        ("ConnectionRefusedError", 502, "connect_failed"),
        ("ConnectionResetError", 502, "reset"),
        (None, 429, "rate_limited"),
        (None, 403, "auth"),
        ("ValueError", 500, ""),
    ],
)
def test_error_kinds(exception: str | None, status: int, kind: str) -> None:
    s = span(error=True, exception=exception, **{"http.response.status_code": status})
    (r,) = otlp.calls_of_traces(traces([s]), ROUTES, "x").records
    assert r.error == kind


def test_bad_times_are_rejected_with_a_reason_and_missing_service_counted() -> None:
    good = span()
    bad = span(start=5.0)
    out = otlp.calls_of_traces(traces([good, bad], service=None), ROUTES, "x")
    assert len(out.records) == 1 and out.rejected == 1
    assert "Unix time" in out.sample and out.missing_service == 1
    assert out.records[0].upstream == "unknown_service"


def test_json_encoding_with_hex_ids() -> None:
    s = span(**{"url.path": "/orders/7", "http.request.method": "GET"})
    doc = json_format.MessageToDict(traces([s]))
    # OTLP/JSON writes ids as hex, where protobuf's JSON mapping would write base64
    rs = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    rs["traceId"], rs["spanId"] = s.trace_id.hex(), s.span_id.hex()
    rs["kind"] = 2  # enums as integers, as the spec allows
    req = otlp.decode_traces(json.dumps(doc).encode(), otlp.JSON)
    (r,) = otlp.calls_of_traces(req, ROUTES, "x").records
    assert r.trace_id == s.trace_id.hex() and r.route == "orders.get"


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        (b"\xff\xff\xff", otlp.PROTOBUF, "not an OTLP protobuf"),
        (b"{not json", otlp.JSON, "not valid JSON"),
        (b"[1]", otlp.JSON, "JSON object"),
        (b'{"resourceSpans": 3}', otlp.JSON, "not an OTLP export"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            otlp.JSON,
            "hex",
        ),
    ],
)
def test_malformed_bodies(body: bytes, kind: str, message: str) -> None:
    with pytest.raises(otlp.Malformed, match=message):
        otlp.decode_traces(body, kind)


def test_gunzip_bounds_and_errors() -> None:
    data = traces([span()]).SerializeToString()
    assert otlp.gunzip(gzip.compress(data), "gzip") == data
    assert otlp.gunzip(zlib.compress(data), "deflate") == data
    assert otlp.gunzip(data, "") == data
    with pytest.raises(otlp.TooLarge):
        otlp.gunzip(gzip.compress(b"\0" * 10_000), "gzip", limit=1000)
    with pytest.raises(otlp.Malformed, match="truncated"):
        otlp.gunzip(gzip.compress(data)[:-12], "gzip")
    with pytest.raises(otlp.Malformed):
        otlp.gunzip(b"not gzip", "gzip")
    with pytest.raises(otlp.Unsupported, match="Content-Encoding"):
        otlp.gunzip(data, "br")
    with pytest.raises(otlp.Unsupported, match="Content-Type"):
        otlp.media_type("text/plain")
    assert otlp.media_type("application/x-protobuf") == otlp.PROTOBUF
    assert otlp.media_type("application/json; charset=utf-8") == otlp.JSON


def test_responses_follow_the_spec() -> None:
    resp = ExportTraceServiceResponse.FromString(
        otlp.encode_response("traces", otlp.PROTOBUF, 2, "2 spans refused")
    )
    assert resp.partial_success.rejected_spans == 2
    assert json.loads(otlp.encode_response("traces", otlp.JSON)) == {}
    body, media = otlp.status_body(otlp.PROTOBUF, 3, "bad body ✓", "invalid_input")
    status = status_pb2.Status.FromString(body)
    assert (status.code, status.message, media) == (3, "bad body ✓", otlp.PROTOBUF)
    doc = json.loads(otlp.status_body(otlp.JSON, 3, "bad", "invalid_input")[0])
    assert doc["code"] == 3 and doc["error"]["code"] == "invalid_input"


def test_access_logs_as_otlp_logs_become_calls() -> None:
    req = logs(
        [
            {
                "http.request.method": "GET",
                "url.path": "/orders/9",
                "http.response.status_code": 502,
                "http.server.request.duration": 0.25,
            },
            {"message": "not a call"},
            {"url.path": "/x", "http.response.status_code": 42},
        ]
    )
    out = otlp.calls_of_logs(req, ROUTES, "enduser.id")
    assert out.logs == 3 and out.rejected == 1 and "status 42" in out.sample
    (r,) = out.records
    assert (r.route, r.status, r.total_ms, r.upstream) == ("orders.get", 502, 250.0, "edge")


def test_batch_key_is_stable_per_body() -> None:
    assert otlp.batch_key("traces", b"a") == otlp.batch_key("traces", b"a")
    assert otlp.batch_key("traces", b"a") != otlp.batch_key("logs", b"a")
    assert len(otlp.batch_key("traces", b"a")) <= 64
    assert otlp.sample_of(b"\xff\xfe") == "hex:fffe"


def test_hostile_attribute_values_are_bounded_and_cleaned() -> None:
    s = span(
        **{
            "http.request.method": "GE\x00T",
            "url.path": "/a",
            "http.response.status_code": "²",  # a digit to isdigit(), not to int()
            "enduser.id": "bob\nsmith\x00",
            "http.request.body.size": float("nan"),
        }
    )
    req = traces([s], service="svc\x00\n")
    (r,) = otlp.calls_of_traces(req, ROUTES, "enduser.id").records
    assert (r.method, r.status, r.consumer, r.upstream) == ("OTHER", 200, "bobsmith", "svc")
    assert r.request_bytes == 0


def _files_of(message: type) -> dict[str, object]:
    """The `FileDescriptorProto`s of `message`'s file and of the files it imports."""
    from google.protobuf import descriptor_pb2

    out: dict[str, object] = {}
    todo = [message.DESCRIPTOR.file]  # type: ignore[attr-defined]
    while todo:
        file = todo.pop()
        if file.name not in out:
            proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(proto)
            out[file.name] = proto
            todo.extend(file.dependencies)
    return out


def test_reading_schema_is_the_official_one_but_for_the_attribute_lists() -> None:
    """The reading messages are the official ones renamed, each ``KeyValue attributes``
    list a ``map<string, bytes>``: undone, that is the official schema, byte for byte."""
    from google.protobuf.descriptor_pb2 import DescriptorProto, FieldDescriptorProto
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    prefix = "hypercare.otlp.reading."
    official = _files_of(ExportTraceServiceRequest) | _files_of(ExportLogsServiceRequest)
    reading = _files_of(otlp._TRACES) | _files_of(otlp._LOGS)
    assert len(official) == len(reading) == 6
    maps: list[str] = []

    def undo(message: DescriptorProto, full_name: str) -> None:
        entries = {n.name: n for n in message.nested_type if n.options.map_entry}
        for f in message.field:
            assert f.type_name.startswith("." + prefix) or not f.type_name, f
            if f.type_name.endswith(".AttributesEntry"):
                entry = entries.pop("AttributesEntry")
                assert f.type_name == f".{prefix}{full_name}.AttributesEntry"
                assert f.name == "attributes"
                assert f.label == FieldDescriptorProto.LABEL_REPEATED
                key, value = entry.field
                assert (key.name, key.number, key.type) == ("key", 1, key.TYPE_STRING)
                assert (value.name, value.number, value.type) == ("value", 2, value.TYPE_BYTES)
                message.nested_type.remove(entry)
                f.type_name = ".opentelemetry.proto.common.v1.KeyValue"
                maps.append(f"{full_name}.{f.name}")
            elif f.type_name:
                f.type_name = "." + f.type_name.removeprefix("." + prefix)
        assert not entries  # no map of its own but the attribute lists
        for nested in message.nested_type:
            undo(nested, f"{full_name}.{nested.name}")

    undone = {}
    for name, file in reading.items():
        assert name.startswith("hypercare/otlp/reading/") and file.package.startswith(prefix)
        file.name = name.removeprefix("hypercare/otlp/reading/")
        file.dependency[:] = [d.removeprefix("hypercare/otlp/reading/") for d in file.dependency]
        file.package = file.package.removeprefix(prefix)
        for message in file.message_type:
            undo(message, f"{file.package}.{message.name}")
        for service in file.service:
            for method in service.method:
                method.input_type = "." + method.input_type.removeprefix("." + prefix)
                method.output_type = "." + method.output_type.removeprefix("." + prefix)
        undone[file.name] = file
    assert undone == official
    assert sorted(maps) == [
        "opentelemetry.proto.common.v1.InstrumentationScope.attributes",
        "opentelemetry.proto.logs.v1.LogRecord.attributes",
        "opentelemetry.proto.resource.v1.Resource.attributes",
        "opentelemetry.proto.trace.v1.Span.Event.attributes",
        "opentelemetry.proto.trace.v1.Span.Link.attributes",
        "opentelemetry.proto.trace.v1.Span.attributes",
    ]


def _malformed_variants() -> list[tuple[str, bytes]]:
    """Export bodies that break a field other than an attribute value, each by one edit."""
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    s = span(**{"url.path": "/orders/1"})
    s.name = "nameZZ"
    s.trace_state = "stateZZ"
    s.status.message = "statusZZ"
    s.links.add(trace_id=b"t" * 16, span_id=b"s" * 8, trace_state="linkZZ")
    s.events.add(name="eventZZ")
    req = traces([s])
    req.resource_spans[0].schema_url = "schemaZZ"
    req.resource_spans[0].scope_spans[0].scope.name = "scopeZZ"
    req.resource_spans[0].scope_spans[0].scope.attributes.append(KeyValue(key="keyZZ"))
    body = req.SerializeToString()
    out = [
        (what, body.replace(what.encode(), what[:-2].encode() + b"\xff\xfe"))
        for what in ("nameZZ", "stateZZ", "statusZZ", "linkZZ", "eventZZ", "schemaZZ", "scopeZZ")
    ]
    out.append(("attribute key", body.replace(b"keyZZ", b"key\xff\xfe")))
    out.append(("as it is", body))
    return out


@pytest.mark.parametrize(("what", "body"), _malformed_variants())
def test_a_body_is_refused_where_the_official_messages_refuse_it(what: str, body: bytes) -> None:
    """Text that is not UTF-8 in any string field (a span's name, a scope's, a link's
    trace state, an attribute's key...) is refused, as the official messages refuse it."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        ExportTraceServiceRequest.FromString(body)
    except DecodeError:
        with pytest.raises(otlp.Malformed, match="not an OTLP protobuf trace export"):
            otlp.decode_traces(body, otlp.PROTOBUF)
        assert what != "as it is"
    else:
        assert what == "as it is"
        (r,) = otlp.calls_of_traces(otlp.decode_traces(body, otlp.PROTOBUF), ROUTES, "x").records
        assert r.route == "orders.get"


@pytest.mark.parametrize("what", ["severityZZ", "bodyZZ", "eventZZ", "as it is"])
def test_a_logs_body_is_refused_where_the_official_messages_refuse_it(what: str) -> None:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    req = logs([{"url.path": "/orders/1", "http.response.status_code": 200}])
    lr = req.resource_logs[0].scope_logs[0].log_records[0]
    lr.severity_text, lr.body.string_value, lr.event_name = "severityZZ", "bodyZZ", "eventZZ"
    body = req.SerializeToString().replace(what.encode(), what[:-2].encode() + b"\xff\xfe")
    if what == "as it is":
        ExportLogsServiceRequest.FromString(body)
        (r,) = otlp.calls_of_logs(otlp.decode_logs(body, otlp.PROTOBUF), ROUTES, "x").records
        assert (r.route, r.status) == ("orders.get", 200)
        return
    with pytest.raises(DecodeError):
        ExportLogsServiceRequest.FromString(body)
    with pytest.raises(otlp.Malformed, match="not an OTLP protobuf logs export"):
        otlp.decode_logs(body, otlp.PROTOBUF)


def test_current_attribute_names_win_over_old_ones_whatever_their_order() -> None:
    s = span(
        **{
            "http.method": "POST",
            "http.request.method": "GET",
            "http.status_code": 500,
            "http.response.status_code": 201,
            "net.sock.peer.addr": "10.9.9.9",
            "client.address": "10.1.1.1",
            "url.path": "/orders/1",
        }
    )
    (r,) = otlp.calls_of_traces(traces([s]), ROUTES, "x").records
    assert (r.method, r.status, r.client_ip, r.route) == ("GET", 201, "10.1.1.1", "orders.get")
    # an old name still counts when the current one has no usable value
    s = span(**{"http.status_code": "404", "url.path": "/orders/1"})
    s.attributes.add(key="http.response.status_code")  # a key without a value
    (r,) = otlp.calls_of_traces(traces([s]), ROUTES, "x").records
    assert r.status == 404


def test_an_attribute_value_that_is_not_utf8_makes_the_body_malformed() -> None:
    body = traces([span(**{"url.path": "/orders/1", "enduser.id": "zzzz"})]).SerializeToString()
    bad = body.replace(b"zzzz", b"\xff\xfe\xfd\xfc")
    with pytest.raises(otlp.Malformed, match="UTF-8|utf-8"):
        otlp.calls_of_traces(otlp.decode_traces(bad, otlp.PROTOBUF), ROUTES, "enduser.id")


def test_spans_give_the_same_calls_one_by_one_and_together() -> None:
    """Columns of many spans (shared value tables, chunks, keys absent from the request)
    read every span as a request of its own would."""
    import random

    rng = random.Random(7)
    now = time.time()
    spans = []
    for i in range(700):
        attrs: dict[str, object] = {
            "http.request.method": rng.choice(("GET", "post", "GE T")),
            "http.route": rng.choice(("/orders/{id}", "/x/{id}", "")),
            "enduser.id": rng.choice(("acme", "bob\n", "")),
        }
        if rng.random() < 0.8:
            attrs["url.path"] = rng.choice((f"/orders/{i}", f"/x/{i}?q=1", f"rel/{i}", "/é"))
        elif rng.random() < 0.5:
            attrs["url.full"] = f"https://h.example/orders/{i}?a"
        if rng.random() < 0.7:
            attrs["http.response.status_code"] = rng.choice((200, 404, 503, "429", 7, 2.0))
        if rng.random() < 0.2:
            attrs["http.request.header.x-request-id"] = f"req-{i}"
        if rng.random() < 0.3:
            attrs["http.response.body.size"] = rng.choice((0, 512, -3, 70000))
        spans.append(
            span(
                start=rng.choice((now - i, now - i, 3.0)),
                kind=rng.choice((Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT)),
                error=rng.random() < 0.2,
                exception=rng.choice((None, None, "ReadTimeout")),
                **attrs,
            )
        )
    together = otlp.calls_of_traces(traces(spans), ROUTES, "enduser.id")
    alone = [otlp.calls_of_traces(traces([s]), ROUTES, "enduser.id") for s in spans]
    assert together.records == [r for a in alone for r in a.records]
    assert together.rejected == sum(a.rejected for a in alone) > 0
    assert together.spans == 700 and 0 < len(together.records) < 700


def test_attribute_values_read_directly_as_the_official_message_reads_them() -> None:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    values = [
        AnyValue(string_value=""),
        AnyValue(string_value="GET"),
        AnyValue(string_value="é/" * 70),  # over 127 bytes: a two-byte length
        AnyValue(string_value="204"),
        AnyValue(int_value=0),
        AnyValue(int_value=503),
        AnyValue(int_value=-1),
        AnyValue(int_value=-(2**63)),
        AnyValue(int_value=2**63 - 1),
        AnyValue(double_value=0.25),
        AnyValue(double_value=float("inf")),
        AnyValue(bool_value=True),
        AnyValue(),
    ]
    header = AnyValue()
    header.array_value.values.add().string_value = "req-1"
    values.append(header)
    for v in values:
        raw = v.SerializeToString()
        for how in (otlp._STR, otlp._INT, otlp._SECONDS):
            want = otlp._value(AnyValue.FromString(raw), how) if raw else None
            assert otlp._decode(raw, how) == want, (v, how)
    assert otlp._plain_texts([b"\n\x03GET", b"\n\x01/"]) == ["GET", "/"]
    assert otlp._plain_texts([b"\n\x03GET", b"\x18\x01"]) is None
    assert otlp._plain_texts([b"\n\x02\xff\xfe"]) is None  # not UTF-8: `_decode` says so
    with pytest.raises(otlp.Malformed):
        otlp._decode(b"\n\x02\xff\xfe", otlp._STR)

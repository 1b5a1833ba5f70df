"""The access-log adapters on real sample payloads from the projects' documentation."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from hypercare.telemetry.accesslog import (
    FORMATS,
    TAIL_FORMATS,
    Rejects,
    parse_body,
    parse_lines,
    unrouted,
)
from hypercare.telemetry.accesslog.base import iso_time, trace_of

SAMPLES = Path(__file__).parent / "samples"


def lines(name: str) -> list[bytes]:
    return (SAMPLES / name).read_bytes().splitlines()


def routes(host: str, method: str, path: str) -> tuple[str, str]:
    if path.startswith("/v1/chat"):
        return "chat", "/v1/chat/completions"
    return "_unmatched", path


def test_registry_lists_every_format() -> None:
    assert set(FORMATS) == {"nginx-json", "envoy-json", "traefik-json", "kong", "apisix"}
    assert TAIL_FORMATS == ("nginx-json", "envoy-json", "traefik-json")


def test_nginx_json_analytics_lines() -> None:
    rejects = Rejects()
    got = parse_lines(
        lines("nginx_json_analytics_access_log.ndjson"),
        FORMATS["nginx-json"],
        unrouted,
        rejects,
        "s",
    )
    assert rejects.total == 0
    first, second, static = got
    assert first.method == "GET"
    assert first.path == "/a/1080936380/alternative-to-refaid-refugee-aid-app.html"
    assert first.status == 200
    assert first.request_id == "7a98025445386b1feef1402bb13362e5"
    assert first.total_ms == pytest.approx(105)
    assert first.upstream_ms == pytest.approx(100)
    assert first.gateway_ms == pytest.approx(5)
    assert first.time == pytest.approx(1733828027.704 - 0.105)
    assert first.target == "172.19.0.255:3006"
    assert first.client_ip == "52.167.144.255"
    assert first.response_bytes == 11497
    assert "bingbot" in first.user_agent
    assert second.path == "/"
    assert static.path == "/maps/api/js"  # the query string is not part of the path
    assert static.target == "" and static.upstream_ms == 0 and static.error == ""


def test_nginx_hypercare_format_written_by_nginx() -> None:
    rejects = Rejects()
    ok, failed, refused = parse_lines(
        lines("nginx_hypercare.ndjson"), FORMATS["nginx-json"], routes, rejects, "s"
    )
    assert rejects.total == 0
    assert ok.status == 200 and ok.error == "" and ok.route == "_unmatched"
    assert ok.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert failed.status == 500 and failed.error == ""  # the upstream answered 500
    assert refused.status == 502 and refused.error == "connect_failed"


def test_envoy_gateway_lines_typed_and_string_values() -> None:
    rejects = Rejects()
    ok, no_host, overflow, limited = parse_lines(
        lines("envoy_gateway_access_log.ndjson"), FORMATS["envoy-json"], routes, rejects, "s"
    )
    assert rejects.total == 0
    assert (ok.route, ok.path_template, ok.status, ok.error) == (
        "chat",
        "/v1/chat/completions",
        200,
        "",
    )
    assert ok.request_id == "4000a69d-3db6-404c-8892-4f8023e008f0"
    assert ok.target == "10.244.0.19:8000"
    assert ok.total_ms == 6 and ok.request_bytes == 73 and ok.response_bytes == 302
    assert ok.client_ip == "10.244.0.30"
    assert no_host.status == 503 and no_host.error == "no_healthy_target"
    assert overflow.error == "reset"
    assert limited.status == 429 and limited.error == "rate_limited"  # all-strings line
    assert limited.method == "HEAD" and limited.target == "" and limited.total_ms == 1


def test_traefik_lines() -> None:
    rejects = Rejects()
    got = parse_lines(
        lines("traefik_access_log.ndjson"), FORMATS["traefik-json"], unrouted, rejects, "s"
    )
    assert rejects.total == 0
    not_modified, stats, logs = got
    assert not_modified.status == 304
    assert not_modified.path == "/dashboard"
    assert not_modified.total_ms == pytest.approx(14.729375)
    assert not_modified.upstream_ms == pytest.approx(14.051833)
    assert not_modified.target == "10.0.1.15:3000"
    assert not_modified.upstream == "s222-umami-60e104-47-web@docker"
    assert not_modified.time == pytest.approx(iso_time("2024-08-25T04:34:37.306691Z", "t"))
    assert stats.path == "/api/logs/stats" and logs.response_bytes == 30975
    assert not_modified.consumer == ""  # "-" means nobody


def test_kong_http_log_objects() -> None:
    rejects = Rejects()
    body = (SAMPLES / "kong_http_log_3_8.json").read_bytes()
    (r,) = parse_body(body, FORMATS["kong"], unrouted, rejects, "kong")
    assert rejects.total == 0
    assert (r.method, r.path, r.status) == ("GET", "/example-route", 200)
    assert r.request_id == "2f6946328ffc4946b8c9120704a4a155"
    assert (r.total_ms, r.upstream_ms, r.gateway_ms) == (173, 171, 1)
    assert r.target == "34.237.204.224:80" and r.upstream == "example_service"
    assert r.time == pytest.approx(1726783839.538)
    assert r.user_agent == "HTTPie/3.2.3"
    (c,) = parse_body(
        (SAMPLES / "kong_http_log_consumer.json").read_bytes(),
        FORMATS["kong"],
        unrouted,
        rejects,
        "k",
    )
    assert c.consumer == "foo" and c.path == "/log" and c.request_id == ""
    # the plugin batches: an array of objects
    both = json.dumps([json.loads(body), json.loads(body)]).encode()
    assert len(parse_body(both, FORMATS["kong"], unrouted, rejects, "kong")) == 2
    (bad,) = parse_body(
        (SAMPLES / "kong_http_log_502_derived.json").read_bytes(),
        FORMATS["kong"],
        unrouted,
        rejects,
        "kong",
    )
    assert bad.status == 502 and bad.error == ""  # the upstream itself answered 502


def test_apisix_http_logger_bodies() -> None:
    rejects = Rejects()
    (r,) = parse_body(
        (SAMPLES / "apisix_http_logger_default.json").read_bytes(),
        FORMATS["apisix"],
        unrouted,
        rejects,
        "apisix",
    )
    assert (r.method, r.path, r.status) == ("GET", "/anything", 200)
    assert r.total_ms == pytest.approx(1200.0000476837)
    assert r.upstream_ms == 1133 and r.target == "3.213.1.197:80"
    assert r.time == pytest.approx(1718291190.508)
    (one,) = parse_body(
        (SAMPLES / "apisix_default_log_entry_3_7.json").read_bytes(),
        FORMATS["apisix"],
        unrouted,
        rejects,
        "apisix",
    )
    assert one.path == "/opentracing" and one.response_bytes == 136
    assert rejects.total == 0


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_lines_that_do_not_match_are_counted_with_a_sample(fmt: str) -> None:
    rejects = Rejects()
    bad = [b"not json at all", b'{"msg": "hello"}', b"[1, 2]", b"", b'{"status": "abc"}']
    assert parse_lines(bad, FORMATS[fmt], unrouted, rejects, "src") == []
    entry = rejects.sources["src"]
    assert entry.total == 4  # the blank line is not an entry
    assert entry.sample == '{"status": "abc"}'
    assert entry.reason.startswith(fmt)


def test_a_rejected_sample_is_bounded() -> None:
    rejects = Rejects()
    parse_lines([b"x" * 100_000], FORMATS["nginx-json"], unrouted, rejects, "s")
    assert len(rejects.sources["s"].sample) <= 513


def test_trace_of_traceparent() -> None:
    assert trace_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == (
        "4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert trace_of("garbage") == ""
    # the usual shape is read without splitting; anything else as before
    for value in (
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "-0-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
    ):
        parts = value.split("-")
        want = parts[1].lower() if len(parts) >= 4 and len(parts[1]) == 32 else ""
        assert trace_of(value) == want, value


def test_nginx_fast_path_agrees_with_the_careful_one() -> None:
    from hypercare.telemetry.accesslog import nginx

    base = orjson.loads(lines("nginx_hypercare.ndjson")[0])
    variants = [
        *(orjson.loads(line) for line in lines("nginx_hypercare.ndjson")),
        {**base, "request_uri": "/orders/1?x=2", "status": "504", "upstream_status": "504"},
        {**base, "upstream_header_time": "-", "upstream_status": "502", "status": "502"},
        {**base, "upstream_addr": "10.0.0.1:80, 10.0.0.2:80", "upstream_status": "502, 200"},
        {**base, "status": "499", "upstream_addr": "", "upstream_status": ""},
    ]
    for doc in variants:
        fast = nginx.parse_line(orjson.dumps(doc), routes)
        assert fast is not None
        assert fast == nginx.parse(doc, routes), doc
    # not the documented format, or values it cannot take: the careful path decides
    assert nginx.parse_line(lines("nginx_json_analytics_access_log.ndjson")[0], routes) is None
    for bad in ({**base, "status": "0"}, {**base, "request_time": "-1"}, {**base, "msec": "x"}):
        assert nginx.parse_line(orjson.dumps(bad), routes) is None


def test_nginx_lines_read_the_same_with_and_without_the_fast_path() -> None:
    """Whatever a field holds, `parse_lines` gives the same records and rejects whether the
    fast path took a line or left it to the careful one."""
    from hypercare.telemetry.accesslog.base import Adapter

    fast = FORMATS["nginx-json"]
    careful = Adapter(fast.name, fast.title, fast.parse, fast.tail)  # no parse_line
    base = orjson.loads(lines("nginx_hypercare.ndjson")[0])
    values = [
        *("", "-", "0", "200", "200.0", "1e3", "-5", " 7", "0200", "nan", "Infinity", "1e400"),
        *("0.105", "1.5", "99999999999999999999", "0.1, 0.2", "10.0.0.1:80 : 10.0.0.2:80"),
        *(200, 0.25, -1, True, None, [], {}),
        *("/a?b=1", "?x", "/" + "p" * 3000, "x" * 40, "00-" + "A" * 32 + "-" + "b" * 16 + "-01"),
    ]
    failed = {**base, "status": "502", "upstream_header_time": "", "upstream_response_time": ""}
    docs = [{**doc, key: v} for doc in (base, failed) for key in doc for v in values]
    docs += [{k: v for k, v in base.items() if k != key} for key in base]
    docs += [{**base, "host": v, "http_host": "h.example.com"} for v in ("", "-", "x")]
    docs += [{**base, "upstream_addr": v, "upstream": "u:1"} for v in ("", "-", "a:1")]
    docs += [{**base, "request_uri": v, "uri": "/u", "request": "GET /r HTTP/1.1"} for v in values]
    docs += [{**{k: v for k, v in base.items() if k != "body_bytes_sent"}, "bytes_sent": "9"}]
    raw = [orjson.dumps(d) for d in docs]
    taken = sum(nginx_fast(line) is not None for line in raw)
    assert taken > len(raw) // 3  # the fast path did take many of them
    for line in raw:
        r_fast, r_careful = Rejects(), Rejects()
        got = parse_lines([line], fast, routes, r_fast, "s")
        want = parse_lines([line], careful, routes, r_careful, "s")
        assert got == want, line
        assert r_fast.total == r_careful.total, line


def nginx_fast(line: bytes) -> object:
    from hypercare.telemetry.accesslog import nginx

    return nginx.parse_line(line, routes)


def test_the_documented_nginx_log_format_is_the_one_the_adapter_reads() -> None:
    from hypercare.telemetry.accesslog.nginx import LOG_FORMAT

    docs = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    assert LOG_FORMAT in docs


def test_route_memo_answers_as_the_matcher_and_stays_bounded() -> None:
    from hypercare.telemetry.accesslog.base import RouteMemo

    asked: list[str] = []

    def match(host: str, method: str, path: str) -> tuple[str, str]:
        asked.append(path)
        return routes(host, method, path)

    m = RouteMemo(match, most=2).for_batch()
    assert m("h", "GET", "/v1/chat/x") == ("chat", "/v1/chat/completions")
    assert m("h", "GET", "/v1/chat/x") == ("chat", "/v1/chat/completions")
    assert asked == ["/v1/chat/x"]
    m("h", "GET", "/a")
    m("h", "GET", "/b")  # over `most`: starts over
    m("h", "GET", "/v1/chat/x")
    assert asked == ["/v1/chat/x", "/a", "/b", "/v1/chat/x"]


def test_route_memo_stops_remembering_while_it_does_not_pay() -> None:
    from hypercare.telemetry.accesslog.base import RouteMemo

    memo = RouteMemo(routes, judge=100, pause=300)
    distinct = iter(range(10**6))

    def batch(paths: list[str]) -> None:
        m = memo.for_batch()
        for p in paths:
            assert m("h", "GET", p) == routes("h", "GET", p)
        memo.after_batch(len(paths))

    batch([f"/d/{next(distinct)}" for _ in range(60)])
    assert memo.remembering  # not judged yet: 60 of 100 lookups
    batch([f"/d/{next(distinct)}" for _ in range(60)])
    assert not memo.remembering and not memo.seen  # no hits in 120 lookups
    assert memo.for_batch() is routes  # the matcher itself, no remembering around it
    for _ in range(3):
        batch([f"/d/{next(distinct)}" for _ in range(100)])
    assert memo.remembering  # paused for 300 lookups: tried again
    for _ in range(3):  # repeating paths: remembering pays and stays
        batch(["/health", "/v1/chat/x", "/health", f"/d/{next(distinct)}"] * 25)
        assert memo.remembering
    assert memo.seen

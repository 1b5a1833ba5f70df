"""End-to-end proxying over real loopback sockets: a real client, the gateway, a real upstream."""

from __future__ import annotations

import json
import socket
import subprocess

import httpx

from tests.gateway.helpers import GatewayUnderTest, Upstream, raw_request, wait_for


def config(up: Upstream, extra_route: str = "", extra: str = "") -> str:
    return f"""
gateway:
  upstreams:
    a:
      targets: ["{up.address}"]
  routes:
    - name: all
      match: {{path: /*}}
      upstream: a
      timeouts: {{connect: 1s, response: 500ms, idle: 500ms}}
      max_body: 104857600
{extra_route}
{extra}
"""


def test_get_is_proxied_with_forwarding_headers(make_gateway, upstream):
    gw: GatewayUnderTest = make_gateway(config(upstream))
    with httpx.Client() as c:
        r = c.get(
            gw.url + "/hello?x=1", headers={"x-request-id": "abc-123", "origin": "https://app"}
        )
    assert r.status_code == 200
    body = r.json()
    assert body["target"] == "/hello?x=1"
    h = body["headers"]
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"] == f"127.0.0.1:{gw.port}"
    assert h["forwarded"].startswith("for=127.0.0.1;proto=http")
    assert h["x-request-id"] == "abc-123"
    assert h["traceparent"].startswith("00-")
    assert len(h["traceparent"]) == 55
    assert r.headers["x-request-id"] == "abc-123"
    assert float(r.headers["x-hypercare-latency"]) >= 0
    assert r.headers["access-control-expose-headers"] == "X-Request-Id"
    wait_for(lambda: len(gw.records) == 1, what="a call record")
    rec = gw.records[0]
    assert rec.route == "all"
    assert rec.status == 200
    assert rec.path == "/hello"
    assert rec.path_template == "/*"
    assert rec.request_id == "abc-123"
    assert rec.target == upstream.address
    assert rec.error == ""
    assert rec.trace_id == h["traceparent"].split("-")[1]
    assert rec.total_ms >= rec.upstream_ms >= 0


def test_keepalive_reuses_upstream_connection(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with httpx.Client() as c:
        for _ in range(5):
            assert c.get(gw.url + "/x").status_code == 200
    assert upstream.connections == 1


def test_pipelined_requests_answered_in_order(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    reqs = (
        b"".join(b"GET /p%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(5))
        + b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    out = raw_request(gw.port, reqs)
    order = [
        json.loads(part.split(b"\r\n\r\n", 1)[1][: part.split(b"\r\n\r\n", 1)[1].rfind(b"}") + 1])[
            "path"
        ]
        for part in out.split(b"HTTP/1.1 200")[1:]
    ]
    assert order == ["/p0", "/p1", "/p2", "/p3", "/p4", "/last"]


def test_hop_by_hop_headers_removed(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with httpx.Client() as c:
        r = c.get(
            gw.url + "/h",
            headers={
                "connection": "keep-alive, x-secret-hop",
                "x-secret-hop": "1",
                "te": "trailers",
                "keep-alive": "timeout=5",
                "proxy-authorization": "Basic eA==",
            },
        )
    h = r.json()["headers"]
    for name in ("x-secret-hop", "te", "keep-alive", "proxy-authorization"):
        assert name not in h
    assert "keep-alive" not in r.headers


def test_head_204_304_have_no_body(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with httpx.Client() as c:
        r = c.head(gw.url + "/x")
        assert r.status_code == 200
        assert r.content == b""
        assert int(r.headers["content-length"]) > 0
        r = c.get(gw.url + "/nocontent")
        assert r.status_code == 204
        assert r.content == b""
        r = c.get(gw.url + "/notmodified")
        assert r.status_code == 304
        assert r.content == b""
        assert c.get(gw.url + "/after").status_code == 200
    assert upstream.connections == 1


def test_chunked_both_ways(make_gateway, upstream):
    gw = make_gateway(config(upstream))

    def gen():
        for _ in range(10):
            yield b"y" * 10000

    with httpx.Client() as c:
        r = c.post(gw.url + "/up", content=gen())
        assert r.json()["body_len"] == 100000
        assert r.json()["headers"]["transfer-encoding"] == "chunked"
        r = c.get(gw.url + "/big?n=300000&chunked=1")
        assert len(r.content) == 300000
        assert r.headers["transfer-encoding"] == "chunked"


def test_large_bodies_stream_both_ways(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    n = 20 * 1024 * 1024
    with httpx.Client(timeout=30) as c:
        r = c.post(gw.url + "/upload", content=b"z" * n)
        assert r.json()["body_len"] == n
        with c.stream("GET", gw.url + f"/big?n={n}") as r:
            total = sum(len(b) for b in r.iter_raw())
    assert total == n


def test_curl_http10_close_delimited(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    out = subprocess.run(
        ["curl", "-s", "--http1.0", "-i", gw.url + "/close-delimited"],
        capture_output=True,
        timeout=10,
        check=True,
    ).stdout
    assert out.startswith(b"HTTP/1.1 200")
    assert out.endswith(b"until-close")


def test_expect_100_continue(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(
            b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        first = s.recv(100)
        assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        resp = b""
        while b"}" not in resp:
            resp += s.recv(65536)
    body = json.loads(resp.split(b"\r\n\r\n", 1)[1])
    assert body["body_len"] == 5
    assert "expect" not in body["headers"]


def test_websocket_upgrade_is_tunnelled(make_gateway, upstream):
    gw = make_gateway(config(upstream).replace("max_body:", "websocket: true\n      max_body:"))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"upgrade: websocket" in head.lower()
        assert b"sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in head.lower()  # RFC 6455
        frame = b"\x81\x85\x00\x00\x00\x00hello"  # masked text frame, zero mask
        s.sendall(frame)
        got = b""
        while len(got) < len(frame):
            got += s.recv(4096)
        assert got == frame
    wait_for(lambda: any(r.status == 101 for r in gw.records), what="the tunnel record")


def test_strip_prefix_and_response_connection_tokens(make_gateway, upstream):
    route = """    - name: api
      match: {path: /api/*}
      upstream: a
      strip_prefix: true
"""
    gw = make_gateway(config(upstream, extra_route=route))
    with httpx.Client() as c:
        assert c.get(gw.url + "/api/orders/7?q=1").json()["target"] == "/orders/7?q=1"
        assert c.get(gw.url + "/api").json()["target"] == "/"


def test_rate_limit_headers_on_allowed_responses(make_gateway, upstream):
    route = """    - name: rl
      match: {path: /rl}
      upstream: a
      rate_limit: {limit: 5, per: 1m, by: ip}
"""
    gw = make_gateway(config(upstream, extra_route=route))
    r = httpx.get(gw.url + "/rl")
    assert r.status_code == 200
    assert r.headers["ratelimit-limit"] == "5"
    assert r.headers["ratelimit-remaining"] == "4"


def test_early_upstream_response_does_not_reuse_connection(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
        resp = b""
        while not resp.endswith(b"no"):
            resp += s.recv(4096)
    assert resp.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in resp
    wait_for(lambda: upstream.open == 0, what="the half-sent upstream connection closed")
    assert httpx.get(gw.url + "/after").status_code == 200
    assert upstream.connections == 2


def test_long_pipeline_of_quick_answers(make_gateway, upstream):
    yaml = f"""
gateway:
  upstreams: {{a: {{targets: ["{upstream.address}"]}}}}
  routes: [{{name: r, match: {{path: /r}}, upstream: a}}]
"""
    gw = make_gateway(yaml)
    n = 3000
    out = raw_request(
        gw.port,
        b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n" * n
        + b"GET /r HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    assert out.count(b"HTTP/1.1 404 ") == n
    assert out.count(b"HTTP/1.1 200 ") == 1


def test_http10_keepalive_and_upstream_connection_close(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    out = raw_request(gw.port, b"GET /close-delimited HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert out.endswith(b"until-close")
    assert b"transfer-encoding" not in out.lower()
    with httpx.Client() as c:
        assert c.get(gw.url + "/close-delimited").text == "until-close"
        assert c.get(gw.url + "/x").status_code == 200


def test_generated_request_id_and_continued_trace(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = httpx.get(gw.url + "/t", headers={"traceparent": incoming})
    rid = r.headers["x-request-id"]
    assert len(rid) == 32
    sent = r.json()["headers"]
    assert sent["x-request-id"] == rid
    assert sent["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert sent["traceparent"] != incoming
    assert "access-control-expose-headers" not in r.headers  # no Origin, no CORS header
    wait_for(lambda: len(gw.records) == 1, what="record")
    assert gw.records[0].trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert gw.records[0].request_id == rid


def test_http10_client_asking_for_keepalive_gets_it(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        for _ in range(2):
            s.sendall(b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            resp = b""
            while not resp.endswith(b"}"):
                resp += s.recv(65536)
            assert resp.startswith(b"HTTP/1.1 200")
            assert b"connection: keep-alive" in resp.lower()


def test_stale_pooled_connection_is_retried_transparently(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with httpx.Client() as c:
        assert c.get(gw.url + "/stale").status_code == 200
        r = c.get(gw.url + "/stale")  # lands on the pooled connection, which the upstream drops
    assert r.status_code == 200
    assert upstream.connections == 2
    assert [x.status for x in gw.records] == [200, 200]


def test_stale_pooled_connection_with_a_body_is_not_replayed(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with httpx.Client() as c:
        assert c.post(gw.url + "/stale", content=b"one").status_code == 200
        r = c.post(gw.url + "/stale", content=b"two")
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_reset"
    assert upstream.connections == 1  # no second connection: the request was not replayed


def test_upgrade_refused_by_upstream_is_answered_then_closed(make_gateway, upstream):
    gw = make_gateway(config(upstream).replace("max_body:", "websocket: true\n      max_body:"))
    out = raw_request(
        gw.port,
        b"GET /not-ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 200")
    assert upstream.requests[0]["headers"]["upgrade"] == "websocket"
    assert b"connection: close" in out
    wait_for(lambda: gw.open_connections() == 0, what="connection closed after a refused upgrade")

"""Regressions for gateway defects found by probing (issue #13): real sockets on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import BinaryIO

import httpx
import pytest

from hypercare.config import parse_config
from hypercare.detection.live import Bucket
from hypercare.errors import ConfigError
from hypercare.telemetry.aggregate import UPSTREAM_ERRORS as TELEMETRY_UPSTREAM_ERRORS
from tests.gateway.helpers import GatewayUnderTest, Upstream, raw_request, wait_for

WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def config(up: Upstream, route: str = "", limits: str = "", extra: str = "") -> str:
    return f"""
gateway:
  upstreams:
    a:
      targets: ["{up.address}"]
      passive: {{failures: 2, eject: 30s}}
  routes:
    - name: ws
      match: {{path: /ws}}
      upstream: a
      websocket: true
    - name: all
      match: {{path: /*}}
      upstream: a
      timeouts: {{connect: 1s, response: 400ms, idle: 1s}}
      max_body: 104857600
{route}
  limits: {{client_body_timeout: 300ms{limits}}}
{extra}
"""


def read_response(s: socket.socket | BinaryIO) -> bytes:
    """One response with a content-length body (enough for the gateway's own answers).

    Pass `s.makefile("rb")` to read several pipelined responses: they may share one segment.
    """
    f = s.makefile("rb") if isinstance(s, socket.socket) else s
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = f.readline()
        if not line:
            return head
        head += line
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + f.read(length)


def error_code(response: bytes) -> str:
    return str(json.loads(response.partition(b"\r\n\r\n")[2])["error"]["code"])


# --- a stalled client body --------------------------------------------------------------------


def test_stalled_client_body_is_408_and_never_ejects_the_upstream(make_gateway, upstream):
    gw: GatewayUnderTest = make_gateway(config(upstream))
    socks = []
    try:
        for _ in range(3):  # more than passive.failures (2): before, this ejected the target
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            s.sendall(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-some")
            socks.append(s)
        for s in socks:
            out = read_response(s)
            assert out.startswith(b"HTTP/1.1 408"), out[:200]
            assert error_code(out) == "client_body_timeout"
            assert b"connection: close" in out.lower()
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: len(gw.records) == 3, what="three records")
    assert {r.error for r in gw.records} == {"client_timeout"}
    assert {r.status for r in gw.records} == {408}
    # neither detection's live windows nor telemetry's aggregates count it against the upstream
    window = Bucket(0)
    for r in gw.records:
        window.add(r)
    assert (window.upstream_errors, window.gateway_errors, window.status_5xx) == (0, 0, 0)
    assert not any(r.error in TELEMETRY_UPSTREAM_ERRORS for r in gw.records)
    target = gw.gw.upstreams["a"].targets[0]
    state = gw.lt.call(lambda: (target.consecutive_failures, target.available(time.monotonic())))
    assert state == (0, True)
    view = httpx.get(f"http://127.0.0.1:{gw.admin_port}/targets").json()
    assert view["upstreams"]["a"][0]["in_rotation"] is True
    assert httpx.get(gw.url + "/after").status_code == 200  # innocent requests still served


def test_complete_body_then_slow_upstream_is_still_504(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    r = httpx.post(gw.url + "/slow?s=2", content=b"a complete body", timeout=5)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    wait_for(lambda: len(gw.records) == 1, what="the record")
    assert gw.records[0].error == "timeout"
    target = gw.gw.upstreams["a"].targets[0]
    assert gw.lt.call(lambda: target.consecutive_failures) == 1


def test_upstream_not_reading_the_body_is_the_upstreams_timeout(make_gateway, upstream):
    # Reading from the client pauses while the upstream takes no body: that wait is the
    # upstream's (504, a passive failure), even though the client sends nothing meanwhile.
    gw = make_gateway(config(upstream))
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    size = 64 * 1024 * 1024
    s.sendall(b"POST /noread?s=5 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)

    def push() -> None:
        block = b"x" * 65536
        try:
            for _ in range(size // len(block)):
                s.sendall(block)
        except OSError:
            pass  # the gateway answered and closed

    sender = threading.Thread(target=push, daemon=True)
    sender.start()
    try:
        wait_for(lambda: len(gw.records) == 1, timeout=10, what="the record")
    finally:
        s.close()
        sender.join(5)
    assert (gw.records[0].status, gw.records[0].error) == (504, "timeout")
    target = gw.gw.upstreams["a"].targets[0]
    assert gw.lt.call(lambda: target.consecutive_failures) == 1


def test_client_not_reading_the_response_is_not_the_upstreams_fault(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big?n=268435456 HTTP/1.1\r\nHost: a\r\n\r\n")
        # and never read: after the route's idle time (1 s) the gateway gives up on us
        wait_for(lambda: len(gw.records) == 1, timeout=15, what="the record")
    assert gw.records[0].error == "client_timeout"
    target = gw.gw.upstreams["a"].targets[0]
    assert gw.lt.call(lambda: target.consecutive_failures) == 0


def test_client_body_timeout_is_configurable_and_validated():
    cfg = parse_config("gateway: {limits: {client_body_timeout: 5s, max_headers: 50}}").gateway
    assert cfg.limits.client_body_timeout.total_seconds() == 5
    assert cfg.limits.max_headers == 50
    default = parse_config("{}").gateway.limits
    assert default.client_body_timeout.total_seconds() == 30 and default.max_headers == 100
    with pytest.raises(ConfigError, match="client_body_timeout"):
        parse_config("gateway: {limits: {client_body_timeout: soon}}")
    with pytest.raises(ConfigError, match="client_body_timeout must be a positive duration"):
        parse_config("gateway: {limits: {client_body_timeout: 0s}}")


# --- upgrades ---------------------------------------------------------------------------------


def test_h2c_upgrade_is_proxied_as_plain_request_and_the_connection_stays_http(
    make_gateway, upstream
):
    gw = make_gateway(config(upstream))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(
            b"GET /first HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
            b"POST /second HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: 5\r\n\r\nhello"
            b"POST /third HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
            b"GET /fourth HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        f = s.makefile("rb")
        responses = [read_response(f) for _ in range(4)]
    assert all(r.startswith(b"HTTP/1.1 200") for r in responses), responses
    seen = upstream.requests[0]["headers"]
    assert "upgrade" not in seen and "http2-settings" not in seen
    assert "upgrade" not in seen.get("connection", "").lower()
    paths = ["/first", "/second", "/third", "/fourth"]
    assert [r["path"] for r in upstream.requests] == paths
    assert [r["body_len"] for r in upstream.requests] == [0, 5, 7, 0]
    wait_for(lambda: len(gw.records) == 4, what="a record for each request")
    assert [r.path for r in gw.records] == paths


def test_declined_upgrade_body_arriving_after_the_head_is_forwarded(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(
            b"POST /late HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: 6\r\n\r\n"
        )
        wait_for(lambda: upstream.connections == 1, what="the head forwarded on its own")
        s.sendall(b"abc")
        s.sendall(b"def")
        out = read_response(s)
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    assert upstream.requests[0]["body_len"] == 6
    assert json.loads(out.partition(b"\r\n\r\n")[2])["body_head"] == "abcdef"


def test_upstream_switching_protocols_unasked_is_502_not_a_tunnel(make_gateway, upstream):
    route = """    - {name: keyed, match: {path: /secret}, upstream: a, auth: key}
"""
    gw = make_gateway(
        config(upstream, route=route, extra="  consumers: [{name: c, keys: [k-123456789]}]")
    )
    out = raw_request(
        gw.port,
        b"GET /switch HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
        b"GET /secret HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 502"), out[:200]
    assert error_code(out) == "bad_handshake"
    # nothing after the refused switch reached the upstream past routing and key auth
    assert b"/secret" not in out
    assert [r["path"] for r in upstream.requests] == ["/switch"]
    assert "upgrade" not in upstream.requests[0]["headers"]
    wait_for(lambda: gw.open_connections() == 0, what="connection closed")
    assert [r.error for r in gw.records] == ["bad_response"]


def test_websocket_only_on_routes_that_allow_it(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    out = raw_request(
        gw.port,
        b"GET /not-ws-route HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: "
        + WS_KEY
        + b"\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 200")
    assert "upgrade" not in upstream.requests[0]["headers"]


def test_websocket_with_a_wrong_accept_is_502_and_closed(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    out = raw_request(
        gw.port,
        b"GET /ws?accept=bad HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: " + WS_KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 502"), out[:200]
    assert b"101" not in out
    assert "Sec-WebSocket-Accept" in json.loads(out.partition(b"\r\n\r\n")[2])["error"]["message"]
    wait_for(lambda: gw.open_connections() == 0, what="connection closed")


def test_websocket_handshake_without_a_valid_key_is_400(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    for key in (b"", b"Sec-WebSocket-Key: not-base64-16\r\n"):
        out = raw_request(
            gw.port,
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + key
            + b"\r\n",
        )
        assert out.startswith(b"HTTP/1.1 400"), out[:200]
    assert upstream.requests == []


# --- header count, API key in the query, X-Forwarded-For ---------------------------------------


def test_too_many_header_fields_431(make_gateway, upstream):
    gw = make_gateway(config(upstream, limits=", max_headers: 20"))
    fields = b"".join(b"X-H%d: 1\r\n" % i for i in range(19))
    out = raw_request(
        gw.port, b"GET /ok HTTP/1.1\r\nHost: a\r\n" + fields + b"Connection: close\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 431"), out[:100]  # 21 fields
    out = raw_request(
        gw.port, b"GET /ok HTTP/1.1\r\nHost: a\r\n" + fields[:-9] + b"Connection: close\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 200")  # 20 fields
    assert [r["path"] for r in upstream.requests] == ["/ok"]


def test_default_header_field_limit_431(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    fields = b"".join(b"X-H%d: 1\r\n" % i for i in range(150))  # 1.3 kB: under the byte limit
    out = raw_request(gw.port, b"GET /ok HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
    assert out.startswith(b"HTTP/1.1 431")
    assert "more than 100 header fields" in out.decode()
    assert upstream.requests == []


def test_api_key_query_parameter_is_not_forwarded(make_gateway, upstream):
    route = """    - {name: keyed, match: {path: /k}, upstream: a, auth: key}
"""
    gw = make_gateway(
        config(upstream, route=route, extra="  consumers: [{name: c, keys: [k-123456789]}]")
    )
    with httpx.Client() as c:
        assert c.get(gw.url + "/k?a=1&apikey=k-123456789&b=2").status_code == 200
        assert c.get(gw.url + "/k?api_key=k-123456789").status_code == 200
        assert c.get(gw.url + "/k?api%6Bey=k-123456789&apikey=other").status_code == 200
    assert [r["target"] for r in upstream.requests] == ["/k?a=1&b=2", "/k", "/k"]
    assert [r.consumer for r in gw.records] == ["c", "c", "c"]


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(make_gateway, upstream):
    route = """    - name: limited
      match: {path: /limited}
      upstream: a
      rate_limit: {limit: 2, per: 1h, by: ip}
"""
    gw = make_gateway(config(upstream, route=route))
    with httpx.Client() as c:
        statuses = [
            c.get(gw.url + "/limited", headers={"x-forwarded-for": f"198.51.100.{i}"}).status_code
            for i in range(3)
        ]
    assert statuses == [200, 200, 429]  # a forged address does not buy a fresh quota
    assert {r.client_ip for r in gw.records} == {"127.0.0.1"}
    assert upstream.requests[0]["headers"]["x-forwarded-for"] == "127.0.0.1"

    trusting = make_gateway(
        config(upstream, route=route, extra='  trusted_proxies: ["127.0.0.0/8"]')
    )
    with httpx.Client() as c:
        r = c.get(trusting.url + "/ok", headers={"x-forwarded-for": "198.51.100.7"})
    assert r.json()["headers"]["x-forwarded-for"] == "198.51.100.7, 127.0.0.1"
    wait_for(lambda: len(trusting.records) == 1, what="the record")
    assert trusting.records[0].client_ip == "198.51.100.7"


def test_trusted_proxies_are_validated_at_load():
    with pytest.raises(ConfigError, match="invalid trusted proxy 'localhost'"):
        parse_config("gateway: {trusted_proxies: [localhost]}")
    with pytest.raises(ConfigError, match="invalid trusted proxy"):
        parse_config("web: {trusted_proxies: [10.0.0.0/33]}")

"""Malformed input, limits, timeouts and broken upstreams: right status, nothing leaked."""

from __future__ import annotations

import contextlib
import json
import socket

import httpx
import pytest

from tests.gateway.helpers import raw_request, wait_for
from tests.gateway.test_proxy import config

# fmt: off
SMUGGLING = {

    "cl_and_te": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # noqa: E501
    "duplicate_cl": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",  # noqa: E501
    "conflicting_cl": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",  # noqa: E501
    "invalid_cl": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
    "cl_list": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    "obs_fold": b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "bad_chunk_size": b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",  # noqa: E501
    "te_not_chunked_last": b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",  # noqa: E501
    "bad_method": b"G@T /x HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad_uri": b"GET x HTTP/1.1\r\nHost: a\r\n\r\n",
    "space_in_uri": b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    "absolute_form_less_path": b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    "two_hosts": b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no_host": b"GET /x HTTP/1.1\r\n\r\n",
    "space_before_colon": b"GET /x HTTP/1.1\r\nHost : a\r\n\r\n",
    "bare_lf": b"GET /x HTTP/1.1\nHost: a\n\n",
}
# fmt: on


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_vectors_get_400_and_are_not_forwarded(make_gateway, upstream, name):
    gw = make_gateway(config(upstream))
    out = raw_request(gw.port, SMUGGLING[name])
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert b"connection: close" in out
    body = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"]
    assert upstream.requests == []
    wait_for(lambda: gw.open_connections() == 0, what="connection closed")
    wait_for(lambda: any(r.error == "bad_request" for r in gw.records), what="record")


def test_bad_chunk_mid_body_after_forwarding_starts(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    out = raw_request(
        gw.port,
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
    )
    assert out.startswith(b"HTTP/1.1 400") or out == b""
    wait_for(lambda: gw.open_connections() == 0, what="connection closed")


def test_http2_preface_version_rejected(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    out = raw_request(gw.port, b"GET /x HTTP/2.0\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 505")


def test_header_too_large_431(make_gateway, upstream):
    gw = make_gateway(config(upstream, extra="  limits: {max_header_bytes: 2048}"))
    out = raw_request(gw.port, b"GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431")
    assert upstream.requests == []


def test_body_too_large_413_by_length_and_by_chunks(make_gateway, upstream):
    route = """    - name: small
      match: {path: /small}
      upstream: a
      max_body: 10
"""
    gw = make_gateway(config(upstream, extra_route=route))
    out = raw_request(
        gw.port, b"POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n" + b"a" * 11
    )
    assert out.startswith(b"HTTP/1.1 413")
    out = raw_request(
        gw.port,
        b"POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\naaaaaa\r\n6\r\naaaaaa\r\n0\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 413") or out == b""
    wait_for(lambda: gw.open_connections() == 0, what="connections closed")


def test_header_read_timeout_408(make_gateway, upstream):
    gw = make_gateway(config(upstream, extra="  limits: {header_timeout: 200ms}"))
    out = raw_request(gw.port, b"GET /x HTTP/1.1\r\nHost: a\r\n", timeout=3)
    assert out.startswith(b"HTTP/1.1 408")
    wait_for(lambda: gw.open_connections() == 0, what="connection closed")


def test_idle_keepalive_connection_closed_silently(make_gateway, upstream):
    gw = make_gateway(
        config(upstream, extra="  limits: {keepalive_timeout: 200ms, header_timeout: 200ms}")
    )
    out = raw_request(gw.port, b"", timeout=3)
    assert out == b""


def test_upstream_response_timeout_504(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    r = httpx.get(gw.url + "/slow?s=2", timeout=5)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    wait_for(lambda: any(x.error == "timeout" for x in gw.records), what="timeout record")
    rec = next(x for x in gw.records if x.error == "timeout")
    assert rec.upstream_ms >= 400
    assert rec.gateway_ms < 100


def test_upstream_idle_body_timeout_cuts_connection(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(gw.url + "/stall-body?s=3", timeout=5)
    wait_for(lambda: gw.open_connections() == 0, what="client connection closed")


def test_connect_refused_502(make_gateway, dead_port):
    port = dead_port
    yaml = f"""
gateway:
  upstreams:
    down: {{targets: ["127.0.0.1:{port}"]}}
  routes:
    - {{name: down, match: {{path: /down}}, upstream: down}}
"""
    gw = make_gateway(yaml)
    r = httpx.get(gw.url + "/down")
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "connect_failed"
    assert gw.records[-1].error == "connect_failed"


def test_connect_timeout_504(make_gateway):
    # A listener that never accepts, with its accept queue full: the kernel drops further SYNs,
    # so connecting hangs, on loopback, like a blackholed target.
    listener = socket.socket()
    fillers = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
        yaml = f"""
gateway:
  upstreams:
    hole: {{targets: ["127.0.0.1:{port}"]}}
  routes:
    - name: hole
      match: {{path: /hole}}
      upstream: hole
      timeouts: {{connect: 300ms}}
"""
        gw = make_gateway(yaml)
        r = httpx.get(gw.url + "/hole", timeout=5)
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "connect_timeout"
        assert gw.records[-1].error == "timeout"
    finally:
        for f in fillers:
            f.close()
        listener.close()


def test_upstream_reset_mid_body(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(gw.url + "/reset")
    wait_for(lambda: any(x.error == "reset" for x in gw.records), what="reset record")
    wait_for(lambda: gw.open_connections() == 0, what="client connection closed")


def test_upstream_garbage_502(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    r = httpx.get(gw.url + "/garbage")
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "bad_response"


def test_no_route_404_and_method_405(make_gateway, upstream):
    yaml = f"""
gateway:
  upstreams: {{a: {{targets: ["{upstream.address}"]}}}}
  routes:
    - {{name: r, match: {{path: /only, methods: [GET]}}, upstream: a}}
"""
    gw = make_gateway(yaml)
    assert httpx.get(gw.url + "/nope").status_code == 404
    r = httpx.post(gw.url + "/only")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/json"


def test_client_gone_mid_response_releases_everything(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(b"GET /big?n=50000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        s.recv(1000)
    wait_for(lambda: gw.open_connections() == 0, what="client connection closed")
    wait_for(lambda: upstream.open == 0, what="upstream connection closed")
    wait_for(lambda: any(x.error == "client_closed" for x in gw.records), what="record")


def test_transfer_coding_other_than_chunked_alone_is_refused(make_gateway, upstream):
    gw = make_gateway(config(upstream))
    out = raw_request(
        gw.port,
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    )
    assert out.startswith(b"HTTP/1.1 501")
    assert upstream.requests == []


def test_no_file_descriptors_leak_across_failures(make_gateway, upstream):
    from tests.gateway.helpers import fd_count

    gw = make_gateway(config(upstream))
    with httpx.Client() as c:
        c.get(gw.url + "/warm")
    wait_for(lambda: gw.open_connections() == 0, what="warm-up connection closed")
    gw.lt.call(lambda: [p.close() for u in gw.gw.upstreams.values() for p in u.pools.values()])
    wait_for(lambda: upstream.open == 0, what="pool emptied")
    baseline = fd_count()
    for path in ("/reset", "/garbage", "/slow?s=1", "/stall-body?s=1", "/close-delimited"):
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(gw.url + path, timeout=3)
    for raw in SMUGGLING.values():
        raw_request(gw.port, raw)
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(b"GET /big?n=50000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        s.recv(1000)
    wait_for(lambda: gw.open_connections() == 0, what="client connections closed")
    gw.lt.call(lambda: [p.close() for u in gw.gw.upstreams.values() for p in u.pools.values()])
    wait_for(lambda: fd_count() <= baseline, timeout=60, what=f"fds back to {baseline}")

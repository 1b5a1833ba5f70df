"""Call capture in the gateway worker, over real loopback sockets: which calls are captured,
bodies kept as they stream (bounded, truncated with the total size), and redaction done
before the capture reaches the record sink."""

from __future__ import annotations

import json
import random

import httpx

from hypercare.config import parse_config
from hypercare.gateway.capture import Capturer, Tap
from hypercare.telemetry.capture import Policy
from hypercare.telemetry.redact import REDACTED, Redactor
from tests.gateway.helpers import GatewayUnderTest, Upstream, wait_for

SECRET = "hunter2-sekrit"


def config(up: Upstream, capture: str) -> str:
    return f"""
gateway:
  upstreams:
    a: {{targets: ["{up.address}"]}}
  routes:
    - {{name: login, match: {{path: /login}}, upstream: a}}
    - {{name: status, match: {{path: /status/*}}, upstream: a}}
    - {{name: big, match: {{path: /big}}, upstream: a, max_body: 104857600}}
    - {{name: echo, match: {{path: /echo/*}}, upstream: a, max_body: 104857600}}
telemetry:
  capture:
{capture}
"""


def test_capture_all_is_redacted_before_it_reaches_the_sink(make_gateway, upstream):
    upstream.issued_token = SECRET + "-issued"
    gw: GatewayUnderTest = make_gateway(
        config(upstream, "    default: all\n    max_body_bytes: 2048\n")
    )
    with httpx.Client() as c:
        r = c.post(
            gw.url + f"/login?user=ann&password={SECRET}",
            json={"user": "ann", "password": SECRET, "profile": {"api_token": SECRET}},
            headers={
                "x-request-id": "login-1",
                "authorization": f"Bearer {SECRET}",
                "x-my-password": SECRET,
                "cookie": f"sid={SECRET}",
            },
        )
    assert r.status_code == 200 and r.json()["access_token"] == SECRET + "-issued"
    wait_for(lambda: "login-1" in gw.sink.captures, what="the capture")
    cap = gw.sink.captures["login-1"]
    assert SECRET not in repr(cap)
    req = {name.lower(): value for name, value in cap.request_headers}
    assert req["authorization"] == REDACTED and req["x-my-password"] == REDACTED
    assert req["cookie"] == REDACTED and req["host"] == f"127.0.0.1:{gw.port}"
    assert req["content-type"] == "application/json"
    assert cap.query == f"user=ann&password={REDACTED}"
    body = json.loads(cap.request_body)
    assert body == {"user": "ann", "password": REDACTED, "profile": {"api_token": REDACTED}}
    assert json.loads(cap.response_body) == {"user": "ann", "access_token": REDACTED}
    assert dict(cap.response_headers)["content-type"] == "application/json"
    assert not cap.request_truncated and not cap.response_truncated and cap.redacted


def test_form_and_multipart_bodies_are_redacted_field_by_field(make_gateway, upstream):
    gw = make_gateway(config(upstream, "    default: all\n"))
    with httpx.Client() as c:
        c.post(
            gw.url + "/login",
            data={"user": "ann", "password": SECRET},
            headers={"x-request-id": "form"},
        )
        c.post(
            gw.url + "/login",
            data={"user": "ann", "client_secret": SECRET},
            files={"avatar": ("a.png", b"\x89PNG\xff\x00" + SECRET.encode(), "image/png")},
            headers={"x-request-id": "multipart"},
        )
    wait_for(lambda: {"form", "multipart"} <= gw.sink.captures.keys(), what="the captures")
    form = gw.sink.captures["form"]
    assert form.request_body.decode() == f"user=ann&password={REDACTED}"
    multi = gw.sink.captures["multipart"].request_body.decode()
    assert SECRET not in multi
    assert f'name="client_secret"\r\n\r\n{REDACTED}\r\n' in multi
    assert 'name="user"\r\n\r\nann\r\n' in multi
    assert "[binary part," in multi  # a file that is not text: its size only


def test_errors_policy_keeps_only_failing_calls_and_off_routes_nothing(make_gateway, upstream):
    gw = make_gateway(
        config(upstream, "    default: errors\n    routes:\n      big: off\n      login: none\n")
    )
    with httpx.Client() as c:
        assert c.get(gw.url + "/status/200", headers={"x-request-id": "ok"}).status_code == 200
        assert c.get(gw.url + "/status/503", headers={"x-request-id": "bad"}).status_code == 503
        c.get(gw.url + "/nowhere", headers={"x-request-id": "no-route"})
        c.get(gw.url + "/big?n=10", headers={"x-request-id": "off"})
        c.post(gw.url + "/login", json={}, headers={"x-request-id": "none"})
    wait_for(lambda: len(gw.records) == 5, what="five records")
    assert set(gw.sink.captures) == {"bad", "no-route"}
    # the gateway's own answer is the response of a call that matched no route
    own = gw.sink.captures["no-route"]
    assert json.loads(own.response_body)["error"]["code"] == "no_route"
    assert dict(own.response_headers)["content-type"] == "application/json"


def test_long_bodies_stream_whole_and_are_kept_truncated_with_their_size(make_gateway, upstream):
    gw = make_gateway(config(upstream, "    default: all\n    max_body_bytes: 1000\n"))
    n = 3 * 1024 * 1024
    upload = b'{"note": "' + b"a" * (n - 12) + b'"}'
    with httpx.Client(timeout=30) as c:
        r = c.get(gw.url + f"/big?n={n}&chunked=1", headers={"x-request-id": "down"})
        assert len(r.content) == n
        r = c.post(gw.url + "/echo/up", content=upload, headers={"x-request-id": "up"})
        assert r.json()["body_len"] == len(upload)  # the upstream got all of it
    wait_for(lambda: {"down", "up"} <= gw.sink.captures.keys(), what="the captures")
    down = gw.sink.captures["down"]
    assert down.response_body == b"x" * 1000 and down.response_truncated
    assert not down.request_truncated and down.request_body == b""
    rec = next(r for r in gw.records if r.request_id == "down")
    assert rec.response_bytes == n  # the full size, next to the truncated capture
    up = gw.sink.captures["up"]
    assert up.request_truncated and up.request_body.startswith(b'{"note": "aaa')
    assert len(up.request_body) <= 1000 + len(REDACTED)


def test_no_capturer_without_a_policy_and_sampling_keeps_its_share() -> None:
    assert Capturer.from_config(parse_config("").telemetry) is None
    cfg = parse_config("telemetry:\n  capture:\n    routes: {x: 'sample: 10%'}\n").telemetry
    capturer = Capturer.from_config(cfg)
    assert capturer is not None
    assert capturer.begin("y") is None  # the default stays off
    capturer.draw = random.Random(7).random
    taps = [capturer.begin("x") for _ in range(2000)]
    kept = sum(t is not None for t in taps)
    assert 120 < kept < 280  # about 10%


def test_a_tap_keeps_at_most_its_limit_without_holding_the_stream() -> None:
    tap = Tap(Policy("all"), 10)
    for chunk in (b"abcd", b"efghij", b"klmnop"):
        tap.request(chunk)
        tap.response(chunk * 3)
    assert bytes(tap.request_body) == b"abcdefghij"
    assert bytes(tap.response_body) == b"abcdabcdab"


class BrokenRedactor(Redactor):
    def redact_body(self, body: bytes, content_type: str = "", *, truncated: bool = False) -> None:
        raise ValueError(f"cannot redact {body!r}")


def test_a_failing_capture_costs_neither_the_call_nor_its_record(make_gateway, upstream, caplog):
    gw = make_gateway(config(upstream, "    default: all\n"))
    broken = Capturer(Policy("all"), {}, 1024, BrokenRedactor())
    gw.lt.call(lambda: setattr(gw.gw, "capture", broken))
    with httpx.Client() as c:
        r = c.post(gw.url + "/login", json={"password": SECRET}, headers={"x-request-id": "x"})
    assert r.status_code == 200
    wait_for(lambda: len(gw.records) == 1, what="the record")
    assert gw.records[0].request_id == "x" and gw.sink.captures == {}
    assert "capturing call x failed (ValueError)" in caplog.text and SECRET not in caplog.text

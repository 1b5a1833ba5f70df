"""Pure decisions, no sockets: routing, balancing, GCRA, headers, health thresholds, JWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import Counter
from datetime import timedelta

import pytest

from hypercare.config import parse_config
from hypercare.errors import ConfigError
from hypercare.gateway import headers as hdr
from hypercare.gateway.auth import AuthError, JwtVerifier, KeyStore
from hypercare.gateway.balancer import LeastConnections, RendezvousHash, RoundRobin, Target
from hypercare.gateway.config import PassiveConfig
from hypercare.gateway.health import record_check, record_failure
from hypercare.gateway.ratelimit import LocalLimiter, gcra
from hypercare.gateway.router import Router


def test_router_precedence_and_methods():
    r = Router.build(
        [
            ("/api/*", None, "prefix"),
            ("/api/orders/{id}", ["GET"], "param"),
            ("/api/status", ["GET"], "exact"),
            ("/api/v2/*", None, "longer"),
        ]
    )
    assert r.match("GET", "/api/status").route == "exact"
    assert r.match("GET", "/api/orders/42").route == "param"
    assert r.match("GET", "/api/orders/42").template == "/api/orders/{id}"
    assert r.match("GET", "/api/v2/x").route == "longer"
    assert r.match("GET", "/api").route == "prefix"
    assert r.match("GET", "/apix").route is None
    m = r.match("POST", "/api/status")
    assert m.route is None
    assert m.method_not_allowed
    assert r.match("DELETE", "/api/orders/1").method_not_allowed


def test_smooth_weighted_round_robin():
    a, b, c = Target("a", 1, 5), Target("b", 1, 1), Target("c", 1, 1)
    rr = RoundRobin([a, b, c])
    picks = [rr.pick(0.0).host for _ in range(7)]  # type: ignore[union-attr]
    assert Counter(picks) == {"a": 5, "b": 1, "c": 1}
    assert picks[:2] != ["a", "a"] or picks[2] != "a"  # interleaved, not a burst of five
    b.healthy = False
    assert {rr.pick(0.0).host for _ in range(10)} == {"a", "c"}  # type: ignore[union-attr]


def test_least_connections_prefers_idle():
    a, b = Target("a", 1), Target("b", 1)
    lc = LeastConnections([a, b])
    a.active = 3
    assert lc.pick(0.0) is b
    b.active = 5
    assert lc.pick(0.0) is a
    a.ejected_until = 10.0
    assert lc.pick(1.0) is b


def test_rendezvous_hash_is_sticky_and_moves_only_lost_keys():
    ts = [Target(f"h{i}", 1) for i in range(4)]
    h = RendezvousHash(ts)
    before = {k: h.pick(0.0, k) for k in map(str, range(200))}
    assert all(h.pick(0.0, k) is t for k, t in before.items())
    ts[0].healthy = False
    after = {k: h.pick(0.0, k) for k in before}
    moved = [k for k in before if before[k] is not after[k]]
    assert all(before[k] is ts[0] for k in moved)
    assert len(set(map(id, before.values()))) == 4


def test_gcra_burst_then_steady():
    now, tat = 100.0, 0.0
    allowed = 0
    for _ in range(15):
        tat, d = gcra(tat, now, 10, 1.0)
        allowed += d.allowed
    assert allowed == 10
    assert not d.allowed
    assert 0 < d.retry_after <= 0.1 + 1e-9
    assert d.remaining == 0
    tat, d = gcra(tat, now + 0.1, 10, 1.0)
    assert d.allowed
    hdrs = d.headers()
    assert b"ratelimit-limit: 10" in hdrs


def test_local_limiter_sweeps_keys():
    t = [0.0]
    lim = LocalLimiter(clock=lambda: t[0])
    for i in range(5):
        lim.check(str(i), 1, 1.0)
    assert len(lim) == 5
    t[0] = 10.0
    lim.sweep()
    assert len(lim) == 0


def test_health_thresholds_and_passive_ejection():
    t = Target("a", 1)
    assert not record_check(t, False, 2, 3)
    assert not record_check(t, False, 2, 3)
    assert record_check(t, False, 2, 3)
    assert not t.healthy
    assert not record_check(t, True, 2, 3)
    assert record_check(t, True, 2, 3)
    assert t.healthy
    p = PassiveConfig(failures=2, eject=timedelta(seconds=30))
    assert not record_failure(t, p, 5.0)
    assert record_failure(t, p, 5.0)
    assert not t.available(6.0)
    assert t.available(35.0)


def test_traceparent_and_request_id():
    tid, tp = hdr.traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert tid == "0af7651916cd43dd8448eb211c80319c"
    assert tp.startswith(b"00-0af7651916cd43dd8448eb211c80319c-")
    assert tp.endswith(b"-01")
    assert b"b7ad6b7169203331" not in tp
    tid2, tp2 = hdr.traceparent(b"garbage")
    assert len(tid2) == 32
    assert tp2.decode().split("-")[1] == tid2
    assert hdr.request_id(b"ok-1") == b"ok-1"
    assert hdr.request_id(b"bad id\x01") != b"bad id\x01"


def test_client_address_trusts_only_configured_proxies():
    nets = hdr.parse_networks(["127.0.0.0/8"])
    assert hdr.client_address("10.0.0.1", b"1.2.3.4", nets) == ("10.0.0.1", None)
    assert hdr.client_address("127.0.0.1", b"1.2.3.4, 127.0.0.2", nets)[0] == "1.2.3.4"


def test_keystore_holds_only_hashes():
    ks = KeyStore([("mobile", ["secret-key-1"])])
    assert ks.lookup(b"secret-key-1") == "mobile"
    assert ks.lookup(b"secret-key-2") is None
    assert "secret-key-1" not in repr(vars(ks))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_hs256(claims: dict[str, object], secret: bytes, alg: str = "HS256") -> str:
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def test_jwt_hs256_checks():
    v = JwtVerifier(secret="s3cret", audience="api", leeway=0)
    ok = make_hs256({"sub": "u1", "aud": "api", "exp": 2000}, b"s3cret")
    assert v.verify(ok, now=1000)["sub"] == "u1"
    cases = {
        "bad_signature": make_hs256({"sub": "u1", "aud": "api"}, b"other"),
        "expired": make_hs256({"aud": "api", "exp": 500}, b"s3cret"),
        "not_yet_valid": make_hs256({"aud": "api", "nbf": 5000}, b"s3cret"),
        "bad_audience": make_hs256({"aud": "web"}, b"s3cret"),
        "bad_algorithm": make_hs256({"aud": "api"}, b"s3cret", alg="none"),
        "malformed": "a.b",
    }
    for reason, token in cases.items():
        with pytest.raises(AuthError) as err:
            v.verify(token, now=1000)
        assert err.value.reason == reason


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown upstream 'nope'"):
        parse_config(
            "gateway:\n  upstreams: {a: {targets: ['127.0.0.1:1']}}\n"
            "  routes: [{name: r, match: {path: /x}, upstream: nope}]\n"
        )
    with pytest.raises(ConfigError, match="unknown balance"):
        parse_config("gateway:\n  upstreams: {a: {targets: ['127.0.0.1:1'], balance: random}}\n")
    with pytest.raises(ConfigError, match=":3:"):
        parse_config("gateway:\n  upstreams:\n    a: {targets: ['nohostport']}\n")
    cfg = parse_config("gateway:\n  upstreams: {a: {targets: ['127.0.0.1:1 5', '127.0.0.1:2']}}\n")
    assert cfg.gateway.upstreams["a"].target_list() == [("127.0.0.1", 1, 5), ("127.0.0.1", 2, 1)]

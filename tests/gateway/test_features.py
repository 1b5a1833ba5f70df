"""Balancing, health, auth, rate limits, admin endpoints — end to end on loopback."""

from __future__ import annotations

import os
import socket
from collections import Counter

import httpx
import pytest

from tests.gateway.helpers import wait_for
from tests.gateway.test_units import make_hs256


def two_targets(a, b, balance: str, extra: str = "") -> str:
    return f"""
gateway:
  upstreams:
    pay:
      targets: ["{a.address}", "{b.address}"]
      balance: {balance}
{extra}
  routes:
    - name: pay
      match: {{path: /*}}
      upstream: pay
"""


@pytest.mark.parametrize("balance", ["round_robin", "least_connections"])
def test_balancers_spread_requests(make_gateway, upstream, upstream_b, balance):
    gw = make_gateway(two_targets(upstream, upstream_b, balance))
    with httpx.Client() as c:
        got = Counter(c.get(gw.url + "/x").json()["upstream"] for _ in range(10))
    assert got == {"a": 5, "b": 5}


def test_hash_balancer_is_sticky_by_header(make_gateway, upstream, upstream_b):
    gw = make_gateway(two_targets(upstream, upstream_b, "hash(header:X-User)"))
    with httpx.Client() as c:
        for user in ("u1", "u2", "u3", "u4"):
            seen = {
                c.get(gw.url + "/x", headers={"x-user": user}).json()["upstream"] for _ in range(4)
            }
            assert len(seen) == 1
        ip = {c.get(gw.url + "/x").json()["upstream"] for _ in range(4)}
    assert len(ip) == 1


def test_hash_by_ip(make_gateway, upstream, upstream_b):
    gw = make_gateway(two_targets(upstream, upstream_b, "hash(ip)"))
    with httpx.Client() as c:
        assert len({c.get(gw.url + "/x").json()["upstream"] for _ in range(6)}) == 1


def test_active_health_ejects_and_returns(make_gateway, upstream, upstream_b):
    health = (
        "      health: {path: /healthz, interval: 50ms, timeout: 200ms, healthy: 2, unhealthy: 2}"
    )
    gw = make_gateway(two_targets(upstream, upstream_b, "round_robin", health))
    upstream_b.healthy = False
    wait_for(lambda: not gw.gw.upstreams["pay"].targets[1].healthy, what="b ejected")
    with httpx.Client() as c:
        assert {c.get(gw.url + "/x").json()["upstream"] for _ in range(6)} == {"a"}
        view = httpx.get(f"http://127.0.0.1:{gw.admin_port}/targets").json()
        assert [t["in_rotation"] for t in view["upstreams"]["pay"]] == [True, False]
        metrics = httpx.get(f"http://127.0.0.1:{gw.admin_port}/metrics").text
        assert (
            f'hypercare_upstream_target_health{{upstream="pay",target="{upstream_b.address}"}} 0'
            in metrics
        )
        upstream_b.healthy = True
        wait_for(lambda: gw.gw.upstreams["pay"].targets[1].healthy, what="b back")
        assert {c.get(gw.url + "/x").json()["upstream"] for _ in range(6)} == {"a", "b"}


def test_passive_ejection_and_no_healthy_target_503(make_gateway, upstream, dead_port):
    dead = dead_port
    yaml = f"""
gateway:
  upstreams:
    pay:
      targets: ["127.0.0.1:{dead}", "{upstream.address}"]
      passive: {{failures: 1, eject: 30s}}
    gone:
      targets: ["127.0.0.1:{dead}"]
      passive: {{failures: 1, eject: 30s}}
  routes:
    - {{name: pay, match: {{path: /pay}}, upstream: pay, retries: 1}}
    - {{name: gone, match: {{path: /gone}}, upstream: gone}}
"""
    gw = make_gateway(yaml)
    with httpx.Client() as c:
        # the dead target fails once, the retry goes to the live one, then it is ejected
        assert [c.get(gw.url + "/pay").status_code for _ in range(4)] == [200] * 4
        assert c.get(gw.url + "/gone").status_code == 502
        r = c.get(gw.url + "/gone")
    assert r.status_code == 503
    assert r.json() == {
        "error": {"code": "no_healthy_target", "message": "upstream 'gone' has no healthy target"}
    }
    assert gw.records[-1].error == "no_healthy_target"


AUTH = """
gateway:
  upstreams: {{a: {{targets: ["{addr}"]}}}}
  jwt: {{secret: "jwt-secret-123", audience: api}}
  routes:
    - {{name: keyed, match: {{path: /k}}, upstream: a, auth: key}}
    - {{name: only-web, match: {{path: /web}}, upstream: a, auth: key, allow: [web]}}
    - {{name: jwt, match: {{path: /j}}, upstream: a, auth: jwt}}
  consumers:
    - {{name: mobile-app, keys: ["${{GW_TEST_KEY}}"]}}
    - {{name: web, keys: ["web-key-000000"]}}
"""


def test_key_auth(make_gateway, upstream, monkeypatch, caplog):
    monkeypatch.setenv("GW_TEST_KEY", "mobile-key-123456")
    gw = make_gateway(AUTH.format(addr=upstream.address))
    with httpx.Client() as c:
        assert c.get(gw.url + "/k").status_code == 401
        assert c.get(gw.url + "/k", headers={"apikey": "wrong-key-000"}).status_code == 401
        r = c.get(gw.url + "/k", headers={"x-api-key": "mobile-key-123456"})
        assert r.status_code == 200
        assert "x-api-key" not in r.json()["headers"]
        assert c.get(gw.url + "/k?apikey=mobile-key-123456").status_code == 200
        r = c.get(gw.url + "/web", headers={"apikey": "mobile-key-123456"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "forbidden"
        assert c.get(gw.url + "/web", headers={"apikey": "web-key-000000"}).status_code == 200
    recs = gw.records
    assert [x.status for x in recs] == [401, 401, 200, 200, 403, 200]
    assert recs[2].consumer == "mobile-app"
    assert recs[0].error == "auth"
    assert "mobile-key-123456" not in caplog.text
    assert "client_ip=127.0.0.1" in caplog.text
    m = httpx.get(f"http://127.0.0.1:{gw.admin_port}/metrics").text
    assert 'hypercare_auth_failures_total{route="keyed",reason="missing"} 1' in m
    assert 'hypercare_auth_failures_total{route="only-web",reason="not_allowed"} 1' in m
    assert all("mobile-key" not in repr(v) for v in vars(gw.gw.keys).values())


def test_jwt_auth(make_gateway, upstream, monkeypatch):
    monkeypatch.setenv("GW_TEST_KEY", "mobile-key-123456")
    gw = make_gateway(AUTH.format(addr=upstream.address))
    good = make_hs256({"sub": "alice", "aud": "api", "exp": 4e9}, b"jwt-secret-123")
    bad = make_hs256({"sub": "alice", "aud": "other"}, b"jwt-secret-123")
    with httpx.Client() as c:
        assert c.get(gw.url + "/j").status_code == 401
        assert c.get(gw.url + "/j", headers={"authorization": f"Bearer {bad}"}).status_code == 401
        assert c.get(gw.url + "/j", headers={"authorization": f"Bearer {good}"}).status_code == 200
    assert gw.records[-1].consumer == "alice"


def _rsa_available() -> bool:
    import shutil

    return shutil.which("openssl") is not None


@pytest.mark.skipif(not _rsa_available(), reason="openssl CLI needed to make an RS256 key")
def test_jwt_rs256(tmp_path):
    import base64
    import json
    import subprocess

    from hypercare.gateway.auth import JwtVerifier

    key = tmp_path / "k.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    pub = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout"], check=True, capture_output=True
    ).stdout.decode()

    def b64(d: bytes) -> str:
        return base64.urlsafe_b64encode(d).rstrip(b"=").decode()

    signing = (
        b64(json.dumps({"alg": "RS256"}).encode()) + "." + b64(json.dumps({"sub": "bob"}).encode())
    )
    sig = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key)],
        input=signing.encode(),
        check=True,
        capture_output=True,
    ).stdout
    v = JwtVerifier(public_key=pub)
    assert v.verify(signing + "." + b64(sig))["sub"] == "bob"
    tampered = signing[:-2] + ("A" if signing[-2] != "A" else "B") + signing[-1]
    with pytest.raises(Exception):  # noqa: B017 - AuthError or JSON error, both are refusals
        v.verify(tampered + "." + b64(sig))


def test_local_rate_limit_429_with_headers(make_gateway, upstream):
    yaml = f"""
gateway:
  upstreams: {{a: {{targets: ["{upstream.address}"]}}}}
  routes:
    - name: limited
      match: {{path: /*}}
      upstream: a
      rate_limit: {{limit: 3, per: 10s, by: ip}}
"""
    gw = make_gateway(yaml)
    with httpx.Client() as c:
        rs = [c.get(gw.url + "/x") for _ in range(5)]
    assert [r.status_code for r in rs] == [200, 200, 200, 429, 429]
    r = rs[3]
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["ratelimit-limit"] == "3"
    assert r.headers["ratelimit-remaining"] == "0"
    assert r.json()["error"]["code"] == "rate_limited"
    m = httpx.get(f"http://127.0.0.1:{gw.admin_port}/metrics").text
    assert 'hypercare_rate_limited_total{route="limited"} 2' in m
    assert 'hypercare_http_requests_total{route="limited",code="429"} 2' in m
    assert 'type="gateway"' in m
    assert 'type="upstream"' in m
    assert 'type="request"' in m


def test_admin_healthz(make_gateway, upstream):
    gw = make_gateway(two_targets(upstream, upstream, "round_robin"))
    assert httpx.get(f"http://127.0.0.1:{gw.admin_port}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"http://127.0.0.1:{gw.admin_port}/nope").status_code == 404


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(10).startswith(b"+PONG")
    except OSError:
        return False


def need_redis() -> None:
    if not redis_up():
        if os.environ.get("CI") == "true":
            pytest.fail("Redis at 127.0.0.1:6379 is unreachable and CI=true")
        pytest.skip("Redis at 127.0.0.1:6379 is unreachable")


def test_redis_rate_limit_falls_back_when_down(make_gateway, upstream, dead_port):
    dead = dead_port
    yaml = f"""
gateway:
  redis_url: redis://127.0.0.1:{dead}/0
  upstreams: {{a: {{targets: ["{upstream.address}"]}}}}
  routes:
    - name: limited
      match: {{path: /*}}
      upstream: a
      rate_limit: {{limit: 2, per: 10s, by: route}}
"""
    gw = make_gateway(yaml)
    with httpx.Client() as c:
        assert [c.get(gw.url + "/x").status_code for _ in range(3)] == [200, 200, 429]
    assert gw.gw.redis_limiter is not None
    assert gw.gw.redis_limiter.fallbacks == 3
    m = httpx.get(f"http://127.0.0.1:{gw.admin_port}/metrics").text
    assert "hypercare_ratelimit_redis_fallbacks 3" in m


@pytest.mark.redis
def test_redis_rate_limit_429_headers(make_gateway, upstream):
    import uuid

    need_redis()
    prefix = f"hypercare-test:{uuid.uuid4().hex}:"
    yaml = f"""
gateway:
  redis_url: redis://127.0.0.1:6379/0
  redis_prefix: "{prefix}"
  upstreams: {{a: {{targets: ["{upstream.address}"]}}}}
  routes:
    - name: limited
      match: {{path: /*}}
      upstream: a
      rate_limit: {{limit: 2, per: 30s, by: ip}}
"""
    gw = make_gateway(yaml)
    try:
        with httpx.Client() as c:
            rs = [c.get(gw.url + "/x") for _ in range(3)]
        assert [r.status_code for r in rs] == [200, 200, 429]
        assert rs[0].headers["ratelimit-remaining"] == "1"
        assert 1 <= int(rs[2].headers["retry-after"]) <= 15
        assert gw.gw.redis_limiter is not None
        assert gw.gw.redis_limiter.fallbacks == 0
    finally:
        import redis

        r = redis.Redis(host="127.0.0.1", port=6379)
        for k in r.scan_iter(prefix + "*"):
            r.delete(k)
        r.close()

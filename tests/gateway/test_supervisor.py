"""Worker processes, the CLI, graceful drain, and a Redis limit shared by two gateways."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import httpx
import pytest

from hypercare.config import parse_config
from hypercare.gateway.supervisor import start_workers
from tests.conftest import free_port
from tests.gateway.helpers import ListSink, wait_for
from tests.gateway.test_features import need_redis


def test_two_workers_share_a_port_and_drain(upstream):
    cfg = parse_config(
        f"""
gateway:
  upstreams: {{a: {{targets: ["{upstream.address}"]}}}}
  routes: [{{name: all, match: {{path: /*}}, upstream: a}}]
"""
    )
    admin = free_port()
    group = start_workers(cfg, "127.0.0.1:0", workers=2, admin_listen=f"127.0.0.1:{admin}")
    try:
        assert group.alive()
        assert len(group.pids) == 2
        url = f"http://127.0.0.1:{group.port}"
        for _ in range(10):
            with httpx.Client() as c:
                assert c.get(url + "/x").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
        # a request in flight during SIGTERM still completes
        with httpx.Client(timeout=5) as c:
            import threading

            result: dict[str, int] = {}
            t = threading.Thread(
                target=lambda: result.setdefault("s", c.get(url + "/slow?s=0.5").status_code)
            )
            t.start()
            wait_for(
                lambda: any(r["path"] == "/slow" for r in upstream.requests), what="slow request"
            )
            group.drain(timeout=5)
            t.join(5)
        assert result == {"s": 200}
        assert not any(p.is_alive() for p in group.processes)
    finally:
        group.stop(timeout=2)


def test_cli_gateway_runs_reloads_on_sighup_and_stops(tmp_path, upstream, upstream_b):
    cfg = tmp_path / "h.yaml"
    cfg.write_text(_route_to(upstream))
    port = free_port()
    admin = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "hypercare", "gateway", "--config", str(cfg),
            "--listen", f"127.0.0.1:{port}", "--workers", "1",
            "--admin-listen", f"127.0.0.1:{admin}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip

    def served_by() -> str:
        try:
            return str(httpx.get(f"http://127.0.0.1:{port}/x", timeout=0.5).json()["upstream"])
        except httpx.HTTPError:
            return ""

    try:
        wait_for(lambda: served_by() == "a", timeout=20, what="the CLI gateway to answer")
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
        cfg.write_text(_route_to(upstream_b))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: served_by() == "b", timeout=20, what="the reloaded configuration")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert b"configuration reloaded" in out


def test_cli_reports_config_errors(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("gateway:\n  routes: [{name: r, match: {path: /x}, upstream: nope}]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hypercare", "gateway", "--config", str(cfg)],
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 2
    assert b"unknown upstream" in proc.stderr


@pytest.mark.redis
def test_redis_limit_shared_by_two_gateway_processes(upstream):
    need_redis()
    prefix = f"hypercare-test:{uuid.uuid4().hex}:"
    text = f"""
gateway:
  redis_url: redis://127.0.0.1:6379/0
  redis_prefix: "{prefix}"
  upstreams: {{a: {{targets: ["{upstream.address}"]}}}}
  routes:
    - name: shared
      match: {{path: /*}}
      upstream: a
      rate_limit: {{limit: 6, per: 60s, by: route}}
"""
    cfg = parse_config(text)
    g1 = start_workers(cfg, "127.0.0.1:0", workers=1)
    g2 = start_workers(cfg, "127.0.0.1:0", workers=1)
    try:
        codes = []
        with httpx.Client() as c:
            for i in range(10):
                g = g1 if i % 2 == 0 else g2
                codes.append(c.get(f"http://127.0.0.1:{g.port}/x").status_code)
        assert codes.count(200) == 6
        assert codes.count(429) == 4
        assert codes[:6] == [200] * 6
    finally:
        g1.stop(2)
        g2.stop(2)
        import redis

        r = redis.Redis(host="127.0.0.1", port=6379)
        for k in r.scan_iter(prefix + "*"):
            r.delete(k)
        r.close()


def _route_to(up) -> str:
    return f"""
gateway:
  upstreams: {{u: {{targets: ["{up.address}"]}}}}
  routes: [{{name: all, match: {{path: /*}}, upstream: u}}]
"""


def test_reload_swaps_workers_without_dropping_in_flight(upstream, upstream_b):
    import threading

    group = start_workers(parse_config(_route_to(upstream)), "127.0.0.1:0", workers=1)
    url = f"http://127.0.0.1:{group.port}"
    try:
        old_pids = group.pids
        result: dict[str, object] = {}

        def slow() -> None:
            with httpx.Client(timeout=10) as c:
                r = c.get(url + "/slow?s=1")
                result["slow"] = (r.status_code, r.text)

        t = threading.Thread(target=slow)
        t.start()
        wait_for(lambda: any(r["path"] == "/slow" for r in upstream.requests), what="in flight")
        group.reload(parse_config(_route_to(upstream_b)))
        assert group.pids != old_pids
        with httpx.Client() as c:
            assert c.get(url + "/x").json()["upstream"] == "b"
        t.join(10)
        assert result["slow"] == (200, "slow")
    finally:
        group.stop(timeout=2)
    assert not group.alive()


def sink_failing_on_env(index: int) -> ListSink:
    if os.environ.get("HC_TEST_FAIL_SINK"):
        raise RuntimeError("sink refused to start")
    return ListSink()


def test_reload_with_a_failing_worker_keeps_the_old_ones(upstream, monkeypatch):
    cfg = parse_config(_route_to(upstream))
    group = start_workers(cfg, "127.0.0.1:0", workers=1, sink_factory=sink_failing_on_env)
    try:
        old = group.pids
        monkeypatch.setenv("HC_TEST_FAIL_SINK", "1")
        with pytest.raises(RuntimeError, match="sink refused to start"):
            group.reload(cfg)
        assert group.pids == old
        assert group.alive()
        assert httpx.get(f"http://127.0.0.1:{group.port}/x").status_code == 200
    finally:
        group.stop(timeout=2)


def test_invalid_jwt_key_and_redis_url_fail_at_load():
    from hypercare.errors import ConfigError

    with pytest.raises(ConfigError, match="not a PEM RSA public key"):
        parse_config("gateway:\n  jwt: {public_key: 'nope'}\n")
    with pytest.raises(ConfigError, match="redis_url"):
        parse_config("gateway:\n  redis_url: 'http://x'\n")


def test_cli_gateway_starts_from_the_kept_config_without_one(tmp_path, upstream):
    cfg = tmp_path / "h.yaml"
    cfg.write_text(_route_to(upstream))
    data = tmp_path / "data"

    def run_gateway(*extra: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "hypercare", "gateway", "--listen", f"127.0.0.1:{port}",
             "--data-dir", str(data), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        return proc, port

    def serves(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/x", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    # nothing kept yet: a clear error
    missing = subprocess.run(
        [sys.executable, "-m", "hypercare", "gateway", "--data-dir", str(data)],
        capture_output=True,
        timeout=30,
    )
    assert missing.returncode == 2
    assert b"no last good configuration" in missing.stderr
    assert b"Traceback" not in missing.stderr
    for extra in (("--config", str(cfg)), ()):
        proc, port = run_gateway(*extra)
        try:
            wait_for(lambda port=port: serves(port), timeout=20, what="the gateway to answer")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
    assert b"starting from" in out and b"last-good.yaml" in out

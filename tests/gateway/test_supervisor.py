"""Worker processes, the CLI, graceful drain, and a Redis limit shared by two gateways."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import httpx
import pytest

from hypercare.config import parse_config
from hypercare.gateway.supervisor import start_workers
from tests.gateway.helpers import free_port, wait_for
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


def test_cli_gateway_runs_and_stops(tmp_path, upstream):
    cfg = tmp_path / "h.yaml"
    cfg.write_text(
        f"""
gateway:
  upstreams: {{a: {{targets: ["{upstream.address}"]}}}}
  routes: [{{name: all, match: {{path: /*}}, upstream: a}}]
"""
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercare",
            "gateway",
            "--config",
            str(cfg),
            "--listen",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/x", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=20, what="the CLI gateway to answer")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert proc.returncode == 0


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

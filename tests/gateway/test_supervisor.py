"""Worker processes, the CLI, graceful drain, and a Redis limit shared by two gateways."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hypercare.config import parse_config
from hypercare.gateway.supervisor import _stop_when_orphaned, start_workers
from tests.gateway.helpers import ListSink, wait_for
from tests.gateway.test_features import need_redis
from tests.support import wait_until


@dataclass
class CliGateway:
    """`hypercare gateway` as a child process on port 0, its output in files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    @classmethod
    def start(cls, tmp: Path, *args: str) -> CliGateway:
        tmp.mkdir(parents=True, exist_ok=True)
        out, err = tmp / "gateway.out", tmp / "gateway.err"
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hypercare", "gateway", "--listen", "127.0.0.1:0", *args],
                stdout=o,
                stderr=e,
            )
        return cls(proc, out, err)

    def listening(self, timeout: float = 60) -> tuple[int, list[int]]:
        """The proxy port and the admin ports it printed, once it printed them."""

        def printed() -> tuple[int, list[int]] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"hypercare gateway exited: {self.err.read_text()}")
            text = self.out.read_text()
            port = re.search(r"worker\(s\) on 127\.0\.0\.1:(\d+)\n", text)
            if port is None:
                return None
            admin = re.search(r"admin listeners on 127\.0\.0\.1 port\(s\) ([\d, ]+)\n", text)
            admins = [int(p) for p in admin.group(1).split(", ")] if admin else []
            return int(port.group(1)), admins

        return wait_until(printed, timeout, "hypercare gateway to print its ports", ignore=())

    def stop(self, timeout: float = 30) -> tuple[int, str, str]:
        """SIGTERM, wait; returns (exit code, stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode, self.out.read_text(), self.err.read_text()


def test_two_workers_share_a_port_and_drain(upstream):
    cfg = parse_config(
        f"""
gateway:
  upstreams: {{a: {{targets: ["{upstream.address}"]}}}}
  routes: [{{name: all, match: {{path: /*}}, upstream: a}}]
"""
    )
    group = start_workers(cfg, "127.0.0.1:0", workers=2, admin_listen="127.0.0.1:0")
    try:
        assert group.alive()
        assert len(group.pids) == 2
        # each worker bound an admin port of its own and reported it
        assert len(set(group.admin_ports)) == 2 and 0 not in group.admin_ports
        url = f"http://127.0.0.1:{group.port}"
        for _ in range(10):
            with httpx.Client() as c:
                assert c.get(url + "/x").status_code == 200
        for admin in group.admin_ports:
            assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
        # a request in flight during SIGTERM still completes
        with httpx.Client(timeout=30) as c:
            import threading

            result: dict[str, int] = {}
            t = threading.Thread(
                target=lambda: result.setdefault("s", c.get(url + "/slow?s=0.5").status_code)
            )
            t.start()
            wait_for(
                lambda: any(r["path"] == "/slow" for r in upstream.requests), what="slow request"
            )
            group.drain(timeout=30)
            t.join(30)
        assert result == {"s": 200}
        assert not any(p.is_alive() for p in group.processes)
    finally:
        group.stop(timeout=2)


def test_cli_gateway_runs_reloads_on_sighup_and_stops(tmp_path, upstream, upstream_b):
    cfg = tmp_path / "h.yaml"
    cfg.write_text(_route_to(upstream))
    gw = CliGateway.start(
        tmp_path, "--config", str(cfg), "--workers", "1", "--admin-listen", "127.0.0.1:0"
    )

    def served_by() -> str:
        try:
            return str(httpx.get(f"http://127.0.0.1:{port}/x", timeout=0.5).json()["upstream"])
        except httpx.HTTPError:
            return ""

    try:
        port, (admin,) = gw.listening()
        wait_for(lambda: served_by() == "a", timeout=60, what="the CLI gateway to answer")
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
        cfg.write_text(_route_to(upstream_b))
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: served_by() == "b", timeout=60, what="the reloaded configuration")
        # the new worker took over the admin port the old one had
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
    finally:
        code, out, err = gw.stop()
    assert code == 0, err
    assert "configuration reloaded" in out


def test_cli_reports_config_errors(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("gateway:\n  routes: [{name: r, match: {path: /x}, upstream: nope}]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hypercare", "gateway", "--config", str(cfg)],
        capture_output=True,
        timeout=60,
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

    runs = iter(range(10))

    def run_gateway(*extra: str) -> CliGateway:
        return CliGateway.start(tmp_path / f"run{next(runs)}", "--data-dir", str(data), *extra)

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
        gw = run_gateway(*extra)
        try:
            port, _ = gw.listening()
            wait_for(lambda port=port: serves(port), timeout=60, what="the gateway to answer")
        finally:
            code, out, err = gw.stop()
        assert code == 0, err
    assert "starting from" in out and "last-good.yaml" in out


def test_admin_ports_bound_at_port_0_stay_across_restart_and_reload(upstream):
    cfg = parse_config(_route_to(upstream))
    group = start_workers(cfg, "127.0.0.1:0", workers=2, admin_listen="127.0.0.1:0")
    try:
        ports = list(group.admin_ports)
        assert len(set(ports)) == 2 and 0 not in ports

        def answered_by(port: int) -> int:
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert metrics.status_code == 200
            return port

        first_pid = group.processes[1].pid
        group.processes[1].kill()
        group.processes[1].join(30)
        group.restart(1)
        assert group.processes[1].pid != first_pid
        assert group.admin_ports == ports  # the restarted worker took its old port again
        assert [answered_by(p) for p in ports] == ports
        group.reload(cfg)
        assert group.admin_ports == ports
        assert [answered_by(p) for p in ports] == ports
    finally:
        group.stop(timeout=10)


def test_no_admin_listener_reports_no_admin_ports(upstream):
    group = start_workers(parse_config(_route_to(upstream)), "127.0.0.1:0", workers=1)
    try:
        assert group.admin_ports == []
    finally:
        group.stop(timeout=10)


def test_cli_gateway_ships_call_records_to_its_console(tmp_path, upstream, monkeypatch):
    """A gateway on another machine: `hypercare gateway` with the node token and console URL
    ships its call records like `up`'s own workers."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from hypercare.telemetry.shipper import INGEST_PATH
    from hypercare.telemetry.wire import decode_batch

    received: list[tuple[str, str, bytes]] = []

    class Console(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append((self.path, self.headers.get("authorization", ""), body))
            reply = b'{"accepted": 1}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            return

    console = ThreadingHTTPServer(("127.0.0.1", 0), Console)
    Thread(target=console.serve_forever, daemon=True).start()
    monkeypatch.setenv("HYPERCARE_CONSOLE_URL", f"http://127.0.0.1:{console.server_address[1]}")
    monkeypatch.setenv("HYPERCARE_NODE_TOKEN", "hcn_remote_node")
    monkeypatch.delenv("HYPERCARE_SPOOL_DIR", raising=False)
    cfg = tmp_path / "h.yaml"
    cfg.write_text(_route_to(upstream))

    def shipped() -> tuple[str, str] | None:
        for path, auth, body in list(received):
            if any(r.path == "/shipped" for r in decode_batch(body).records):
                return path, auth
        return None

    gw = CliGateway.start(tmp_path / "run", "--config", str(cfg), "--data-dir", str(tmp_path))
    try:
        port, _ = gw.listening()
        assert httpx.get(f"http://127.0.0.1:{port}/shipped", timeout=30).status_code == 200
        path, auth = wait_until(shipped, 60, "the gateway to ship the call's record")
    finally:
        code, out, err = gw.stop()
        console.shutdown()
        console.server_close()
    assert code == 0, err
    assert path == INGEST_PATH and auth == "Bearer hcn_remote_node"
    assert "shipping call records to http://127.0.0.1:" in out


def test_cli_gateway_refuses_half_a_shipping_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERCARE_CONSOLE_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("HYPERCARE_NODE_TOKEN", raising=False)
    cfg = tmp_path / "h.yaml"
    cfg.write_text("gateway: {}\n")
    done = subprocess.run(
        [sys.executable, "-m", "hypercare", "gateway", "--config", str(cfg)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"HYPERCARE_NODE_TOKEN is not set" in done.stderr
    assert b"Traceback" not in done.stderr


async def test_a_worker_orphaned_while_it_started_stops() -> None:
    """The worker is told its supervisor's pid: when the supervisor died before the watch
    began, the worker's parent is already another process and the worker must drain."""
    stop = asyncio.Event()
    gone = os.getpid()  # not this process's parent: as if the supervisor were gone
    await asyncio.wait_for(_stop_when_orphaned(stop, gone), 120)
    assert stop.is_set()

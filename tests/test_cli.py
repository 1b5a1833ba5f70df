"""The command line, run as a user runs it: a real process."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from hypercare.store.db import create_engine
from tests.conftest import PG_HOST, PG_PORT, PG_URL, require_service
from tests.support import free_port, start_up, wait_until

HYPERCARE = [sys.executable, "-m", "hypercare"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HYPERCARE, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and re.match(r"hypercare \d+\.\d+", r.stdout)


def test_config_check_ok_and_invalid(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("triage:\n  at_risk_fraction: 0.3\n")
    assert run("config", "check", str(good)).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("triage:\n  at_risk_fraction: 3\n")
    r = run("config", "check", str(bad))
    assert r.returncode == 2
    assert f"{bad}:2: triage.at_risk_fraction" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_database_url_is_a_clear_error(tmp_path: Path) -> None:
    r = run("migrate", "--database-url", "mysql://x/y", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "postgresql://" in r.stderr and "Traceback" not in r.stderr


def test_token_create_on_sqlite(tmp_path: Path) -> None:
    assert run("migrate", "--data-dir", str(tmp_path)).returncode == 0
    r = run("token", "create", "--role", "viewer", "--name", "me", "--data-dir", str(tmp_path))
    assert r.returncode == 0 and r.stdout.strip().startswith("hc_")
    r = run("token", "create", "--role", "king", "--name", "me", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "king" in r.stderr


async def _pg_admin(sql: str) -> None:
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.mark.postgres
def test_migrate_and_token_on_postgres() -> None:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"hc_cli_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, timeout=30)
    try:
        url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
        r = run("migrate", "--database-url", url)
        assert r.returncode == 0, r.stderr
        r = run("token", "create", "--role", "admin", "--name", "ops", "--database-url", url)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("hc_")
    finally:
        subprocess.run(
            ["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], timeout=30
        )


def test_up_bootstraps_an_admin_once_and_serves_the_api(tmp_path: Path) -> None:
    env = {"HYPERCARE_ADMIN_TOKEN": None}  # unset: a token is generated and printed once
    up = start_up(tmp_path / "data", args=["--workers", "0"], env=env)
    out = up.stop(signal.SIGINT)
    token = re.search(r"admin token .*: (hc_\S+)", out)
    assert token, out
    # second start: an admin exists, no new token is printed
    up = start_up(tmp_path / "data", args=["--workers", "0"], env=env)
    try:
        h = {"Authorization": f"Bearer {token.group(1)}"}
        r = httpx.post(f"{up.url}/api/v1/issues", json={"title": "Checkout 500s"}, headers=h)
        assert r.status_code == 201
    finally:
        out = up.stop(signal.SIGINT)
    assert "admin token" not in out
    assert token.group(1) not in out


def test_up_uses_the_admin_token_from_the_environment(tmp_path: Path) -> None:
    env = {"HYPERCARE_ADMIN_TOKEN": "hc_automation-secret-123"}
    up = start_up(tmp_path / "data", args=["--workers", "0"], env=env)
    try:
        r = httpx.get(
            f"{up.url}/api/v1/whoami", headers={"Authorization": "Bearer hc_automation-secret-123"}
        )
        assert r.json()["role"] == "admin"
    finally:
        out = up.stop(signal.SIGINT)
    assert "hc_automation-secret-123" not in out


def test_up_reports_the_ports_it_bound_in_the_ready_file(tmp_path: Path) -> None:
    """Port 0 for the console and the gateway: the ready file says what was bound, and
    goes away when `up` stops."""
    ready = tmp_path / "ready.json"
    admin = free_port()
    proc = subprocess.Popen(
        [
            *HYPERCARE,
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--console-listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--gateway-admin-listen",
            f"127.0.0.1:{admin}",
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: proc.poll() is not None or ready.exists(), 60, "the ready file")
        assert proc.poll() is None, proc.stdout and proc.stdout.read()
        info = json.loads(ready.read_text())
        assert set(info) == {"console", "gateway", "gateway_admin", "workers", "pid"}
        assert info["pid"] == proc.pid and info["workers"] == 1
        assert info["gateway_admin"] == f"127.0.0.1:{admin}"
        console_port = int(info["console"].rpartition(":")[2])
        gateway_port = int(info["gateway"].rpartition(":")[2])
        assert 0 < console_port != gateway_port > 0
        assert httpx.get(f"{info['console']}/readyz").status_code == 200
        # the gateway answers on its reported port (no route configured: 404)
        assert httpx.get(f"http://{info['gateway']}/nothing").status_code == 404
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert f"console: {info['console']}/" in out
    assert not ready.exists()


def test_up_says_when_the_console_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run(
            "up",
            "--workers",
            "0",
            "--data-dir",
            str(tmp_path),
            "--console-listen",
            f"127.0.0.1:{port}",
        )
    assert r.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port} for the console" in r.stderr
    assert "Traceback" not in r.stderr


def test_up_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    r = run("up", "--data-dir", str(tmp_path), "--console-listen", "127.0.0.1:70000")
    assert r.returncode != 0
    assert "--console-listen must be HOST:PORT" in r.stderr


def test_up_with_invalid_config_names_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "hc.yaml"
    cfg.write_text("triage:\n  nope: 1\n")
    r = run("up", "--config", str(cfg), "--data-dir", str(tmp_path))
    assert r.returncode == 2 and f"{cfg}:2" in r.stderr


def _until_refused(port: int, served: list[int], most: int = 20_000) -> None:
    """GET through the gateway, one connection each, until it refuses (at most `most`,
    at most 20 s); every answer's status goes into `served`."""
    deadline = time.monotonic() + 20
    while len(served) < most and time.monotonic() < deadline:
        try:
            served.append(httpx.get(f"http://127.0.0.1:{port}/items/{len(served)}").status_code)
        except httpx.TransportError:
            return


def test_up_runs_the_gateway_next_to_the_console(tmp_path: Path) -> None:
    """`hypercare up` proxies through its gateway workers to a real upstream on loopback."""
    from tests.gateway.helpers import Upstream

    upstream = Upstream("shop")
    cfg = tmp_path / "hc.yaml"
    cfg.write_text(
        "gateway:\n"
        "  upstreams:\n"
        f"    shop: {{targets: ['127.0.0.1:{upstream.port}']}}\n"
        "  routes:\n"
        "    - {name: items, match: {path: /items/*}, upstream: shop}\n"
    )
    env = {"HYPERCARE_ADMIN_TOKEN": "hc_gateway-test-admin"}
    try:
        up = start_up(tmp_path / "data", config=cfg, args=["--workers", "2"], env=env, timeout=40)
        try:
            gw = up.gateway_port
            r = httpx.get(f"http://127.0.0.1:{gw}/items/42")
            assert r.status_code == 200
            assert r.headers["x-request-id"]
            assert httpx.get(f"http://127.0.0.1:{gw}/elsewhere").status_code == 404
            metrics = httpx.get(f"http://{up.gateway_admin}/metrics").text
            assert "hypercare_http_requests_total" in metrics
            # traffic keeps flowing while `up` stops, until the gateway refuses it
            served: list[int] = []
            traffic = threading.Thread(target=_until_refused, args=(gw, served), daemon=True)
            traffic.start()
            wait_until(lambda: len(served) >= 20, 30, "20 answers through the gateway")
        finally:
            out = up.stop(signal.SIGTERM)
        traffic.join(30)
    finally:
        upstream.stop()
    assert f"gateway: http://127.0.0.1:{gw}/ (2 worker(s))" in out
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{gw}/items/1")
    # the workers stopped first and shipped their last records to the console, which
    # stored them before it stopped: nothing spooled, every call stored
    assert "console unreachable" not in out and "Traceback" not in out, out
    assert not list(tmp_path.rglob("*.batch"))
    with sqlite3.connect(tmp_path / "data" / "hypercare.db") as db:
        (stored,) = db.execute("SELECT sum(records) FROM telemetry_batches").fetchone()
    assert stored == 2 + len(served)  # /items/42, the 404, and what the traffic got back

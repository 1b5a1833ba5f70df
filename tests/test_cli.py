"""The command line, run as a user runs it: a real process."""

from __future__ import annotations

import asyncio
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
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import typer
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


def test_token_commands_refuse_a_store_that_does_not_exist(tmp_path: Path) -> None:
    """Run from the wrong directory, `token create` used to make a new empty store and print
    a token the running server refuses."""
    elsewhere = tmp_path / "not-the-data-dir"
    for args in (
        ("token", "create", "--role", "admin", "--name", "me"),
        ("token", "list"),
        ("token", "revoke", "1"),
        ("telemetry", "node-token", "--name", "edge-1"),
    ):
        r = run(*args, "--data-dir", str(elsewhere))
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert f"no hypercare store at {elsewhere / 'hypercare.db'}" in r.stderr
        assert "--create-store" in r.stderr and "Traceback" not in r.stderr
        assert "hc_" not in r.stdout
    assert not elsewhere.exists()
    r = run(
        "token", "create", "--role", "admin", "--name", "me", "--data-dir", str(elsewhere),
        "--create-store",
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.startswith("hc_"), r.stderr
    assert f"store: {elsewhere / 'hypercare.db'} (data dir {elsewhere})" in r.stderr
    assert (elsewhere / "hypercare.db").exists()


async def _sign_in(db: Path, token: str) -> str:
    from hypercare.auth import service
    from hypercare.store.db import session_factory
    from hypercare.web import sessions

    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with session_factory(engine)() as session, session.begin():
            who = await service.authenticate(session=session, token=token)
            return await sessions.open_session(
                session=session, principal=who, ttl=timedelta(hours=1)
            )
    finally:
        await engine.dispose()


async def _signed_in(db: Path, sid: str) -> bool:
    from hypercare.store.db import session_factory
    from hypercare.web import sessions

    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with session_factory(engine)() as session, session.begin():
            return await sessions.principal_for(session=session, sid=sid) is not None
    finally:
        await engine.dispose()


def test_token_list_and_revoke(tmp_path: Path) -> None:
    d = ("--data-dir", str(tmp_path))
    assert run("migrate", *d).returncode == 0
    assert run("token", "list", *d).stdout.startswith("no tokens")
    ops = run("token", "create", "--role", "admin", "--name", "ops", *d).stdout.strip()
    dana = run("token", "create", "--role", "responder", "--name", "dana", *d).stdout.strip()
    r = run("token", "list", *d)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "ROLE", "PREFIX"]
    by_name = {line.split()[1]: line.split() for line in lines[1:]}
    assert by_name["ops"][2] == "admin" and by_name["dana"][2] == "responder"
    assert by_name["dana"][-1] == "active" and by_name["dana"][-2] == "never"
    assert dana not in r.stdout and ops not in r.stdout  # only a prefix is shown
    assert by_name["dana"][3].rstrip("…") == dana[: len(by_name["dana"][3]) - 1]

    sid = asyncio.run(_sign_in(tmp_path / "hypercare.db", dana))
    assert asyncio.run(_signed_in(tmp_path / "hypercare.db", sid))
    r = run("token", "revoke", by_name["dana"][0], *d)
    assert r.returncode == 0 and "revoked token" in r.stdout and "dana" in r.stdout, r.stderr
    assert not asyncio.run(_signed_in(tmp_path / "hypercare.db", sid))
    listed = {
        line.split()[1]: line.split() for line in run("token", "list", *d).stdout.splitlines()
    }
    assert listed["dana"][-1] == "revoked" and listed["ops"][-1] == "active"
    r = run("token", "revoke", by_name["dana"][0], *d)
    assert r.returncode == 0 and "already revoked" in r.stdout
    assert "no active admin" not in r.stderr
    r = run("token", "revoke", by_name["ops"][0], *d)
    assert r.returncode == 0 and "no active admin token is left" in r.stderr
    r = run("token", "revoke", "999", *d)
    assert r.returncode == 2 and "no token with id 999" in r.stderr and "Traceback" not in r.stderr


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
        r = run("token", "create", "--role", "admin", "--name", "ops", "--database-url", url)
        assert r.returncode == 2 and "holds no hypercare store" in r.stderr, r.stderr
        assert "--create-store" in r.stderr and "Traceback" not in r.stderr
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
    token = re.search(rf"sign in at {re.escape(up.url)}/ with (hc_\S+)", out)
    assert token, out
    assert len(re.findall("sign in", out)) == 1, out
    # second start: an admin exists, no new token is printed
    up = start_up(tmp_path / "data", args=["--workers", "0"], env=env)
    try:
        h = {"Authorization": f"Bearer {token.group(1)}"}
        r = httpx.post(f"{up.url}/api/v1/issues", json={"title": "Checkout 500s"}, headers=h)
        assert r.status_code == 201
    finally:
        out = up.stop(signal.SIGINT)
    assert "shown once" not in out and "hypercare token list" in out
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
    """The ports are checked before anything else: no store is created, no admin token
    minted, and the message names the flag to change (not uvicorn's Errno 98)."""
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run(
            "up", "--workers", "0", "--data-dir", str(data), "--console-listen", f"127.0.0.1:{port}"
        )
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"port {port} is in use on 127.0.0.1 (--console-listen to choose another)" in r.stderr
    assert "Traceback" not in r.stderr and "Errno" not in r.stderr
    assert "hc_" not in r.stdout + r.stderr and "sign in" not in r.stdout
    assert not data.exists()


def test_up_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    r = run("up", "--data-dir", str(tmp_path), "--console-listen", "127.0.0.1:70000")
    assert r.returncode != 0
    assert "--console-listen must be HOST:PORT" in r.stderr


@pytest.mark.parametrize("flag", ["--gateway-listen", "--gateway-admin-listen"])
def test_port_check_names_each_flag(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    from hypercare import cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(typer.Exit) as exit_:
            cli.check_ports([("127.0.0.1", port, flag)])
    assert exit_.value.exit_code == 2
    assert f"port {port} is in use on 127.0.0.1 ({flag} to choose another)" in (
        capsys.readouterr().err
    )


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

"""`hypercare up` as a supervisor: the gateway outlives its console."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import uvicorn

from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.demo.run import demo_tokens
from hypercare.server import (
    _exit_when_orphaned,
    _Server,
    bind_console,
    bootstrap_admin,
    sign_in_line,
)
from hypercare.telemetry import segments
from tests.gateway.helpers import Upstream
from tests.support import Up, start_up, wait_until

# generous: the suite runs on busy shared cores, and each wait polls a condition
WAIT = 120.0
CONSOLE_PID = r"console started \(pid (\d+)\)"


def _config(tmp_path: Path, upstream: Upstream) -> Path:
    cfg = tmp_path / "hc.yaml"
    cfg.write_text(
        "gateway:\n"
        "  upstreams:\n"
        f"    shop: {{targets: ['127.0.0.1:{upstream.port}']}}\n"
        "  routes:\n"
        "    - {name: items, match: {path: /items/*}, upstream: shop}\n"
    )
    return cfg


def _start(tmp_path: Path, upstream: Upstream, **kw: bool) -> Up:
    return start_up(
        tmp_path / "data",
        config=_config(tmp_path, upstream),
        args=["--workers", "2"],
        env={"HYPERCARE_ADMIN_TOKEN": "hc_supervisor-test-admin"},
        **kw,
    )


def _pids(up: Up, pattern: str) -> list[int]:
    return [int(m[1]) for m in re.finditer(pattern, up.output())]


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/readyz", timeout=2).status_code == 200


def _stored_request_ids(db: Path) -> Counter[str]:
    """Every call's request id as stored by the console, decoded from its blocks."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        blocks = conn.execute("SELECT calls FROM telemetry_segments").fetchall()
    return Counter(
        segments.record_of(row).request_id for (calls,) in blocks for row in segments.loads(calls)
    )


def _load(url: str, answered: list[str], failed: list[str], stop: threading.Event) -> None:
    """GET through the gateway on one kept-alive connection until `stop` (at most 4 × WAIT
    seconds). Bounded in time, not in requests: a count runs out while a restarted console
    is still starting on a busy machine (the gateway serves thousands a second meanwhile),
    and then no traffic is left to come after the restart."""
    deadline = time.monotonic() + 4 * WAIT
    with httpx.Client(timeout=10) as client:
        for i in itertools.count():
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                r = client.get(f"{url}/items/{i}")
            except httpx.HTTPError as exc:
                failed.append(repr(exc))
                continue
            if r.status_code == 200:
                answered.append(r.headers["x-request-id"])
            else:
                failed.append(f"{r.status_code} {r.text[:100]}")


def test_kill_9_of_the_console_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    upstream = Upstream("shop")
    up = _start(tmp_path, upstream)
    stop = threading.Event()
    loaders: list[threading.Thread] = []
    try:
        (first_pid,) = _pids(up, CONSOLE_PID)
        answered: list[str] = []
        failed: list[str] = []
        loaders = [
            threading.Thread(
                target=_load, args=(f"http://{up.gateway}", answered, failed, stop), daemon=True
            )
            for _ in range(4)
        ]
        for t in loaders:
            t.start()
        wait_until(lambda: len(answered) >= 300, WAIT, "traffic through the gateway")
        os.kill(first_pid, signal.SIGKILL)
        # the supervisor notices, logs why and starts a new console; traffic goes on over
        # the whole outage, until the new console answers on the same URL
        wait_until(lambda: "console killed by signal SIGKILL" in up.output(), WAIT, "the log")
        wait_until(lambda: len(_pids(up, CONSOLE_PID)) == 2, WAIT, "a new console")
        wait_until(lambda: _ready(up.url), WAIT, "the restarted console to be ready")
        during = len(answered)
        wait_until(lambda: len(answered) >= during + 200, WAIT, "traffic after the restart")
        stop.set()
        for t in loaders:
            t.join(30)
        assert not failed, failed[:5]
        assert up.proc.poll() is None

        # every answered call arrives: the spooled batches replayed, a batch whose answer
        # the kill cut off stored once
        expected = Counter(answered)
        assert len(expected) == len(answered)
        db = tmp_path / "data" / "hypercare.db"
        wait_until(
            lambda: sum(_stored_request_ids(db).values()) >= len(answered),
            WAIT,
            "every answered call stored",
        )
        assert _stored_request_ids(db) == expected
        # a worker deletes a spooled batch only once the console's answer for it is back,
        # which is after the console committed it: the last one may still be on disk now
        wait_until(lambda: not list(tmp_path.rglob("*.batch")), WAIT, "the spools to drain")
    finally:
        stop.set()
        # more than the supervisor's own bounds (workers drain 30 s + 5, the console 30 s)
        out = up.stop(timeout=WAIT)
        upstream.stop()
    assert up.proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


def test_a_killed_worker_is_restarted_and_ctrl_c_stops_everything_in_order(
    tmp_path: Path,
) -> None:
    upstream = Upstream("shop")
    up = _start(tmp_path, upstream, new_session=True)
    worker_0 = r"gateway worker 0 started \(pid (\d+)\)"
    try:
        assert httpx.get(f"http://{up.gateway}/items/1").status_code == 200
        os.kill(_pids(up, worker_0)[0], signal.SIGKILL)
        wait_until(lambda: len(_pids(up, worker_0)) == 2, WAIT, "worker 0 started again")
        out = up.output()
        assert "gateway worker 0 killed by signal SIGKILL (9)" in out
        kept = tmp_path / "data" / "gateway" / "last-good.yaml"
        assert f"worker 0 starts from {kept}" in out
        assert kept.read_text() == (tmp_path / "hc.yaml").read_text()
        for i in range(20):  # fresh connections reach both workers
            assert httpx.get(f"http://{up.gateway}/items/{i}").status_code == 200
        # Ctrl-C reaches the whole group: the workers drain, the console (which ignores
        # SIGINT) takes their last records and is stopped last by the supervisor
        os.killpg(up.proc.pid, signal.SIGINT)
        up.proc.wait(WAIT)
    finally:
        if up.proc.poll() is None:
            os.killpg(up.proc.pid, signal.SIGKILL)
            up.proc.wait(10)
        upstream.stop()
    out = up.output()
    assert up.proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "console unreachable" not in out, out
    assert not list(tmp_path.rglob("*.batch"))
    with sqlite3.connect(tmp_path / "data" / "hypercare.db") as db:
        (stored,) = db.execute("SELECT sum(records) FROM telemetry_batches").fetchone()
    # a record the killed worker had not shipped yet is lost with it; the rest are stored
    assert 20 <= stored <= 21


def test_one_sign_in_line_for_each_case() -> None:
    line = sign_in_line("127.0.0.1", 8700, "hc_abc", from_env=False)
    assert line.startswith("sign in at http://127.0.0.1:8700/ with hc_abc")
    assert "shown once" in line
    assert "HYPERCARE_ADMIN_TOKEN" in sign_in_line("127.0.0.1", 8700, None, from_env=True)
    existing = sign_in_line("127.0.0.1", 8700, None, from_env=False)
    assert "hypercare token list" in existing and "hc_" not in existing


async def test_the_demo_signs_in_with_the_bootstrap_token(state: AppState) -> None:
    """A fresh store: `up --demo` creates the bootstrap admin and the demo uses that token
    for its admin, so only one token is printed and it works."""
    token = await bootstrap_admin(state.sessions, None)
    assert token is not None
    tokens = await demo_tokens(state.sessions, token)
    assert tokens["admin"] == token
    assert set(tokens) == {"admin", "support", "responder"}
    async with state.sessions() as session, session.begin():
        names = {t.name for t in await auth_service.list_tokens(session=session)}
        who = await auth_service.authenticate(session=session, token=tokens["admin"])
    assert who.role is Role.admin and "demo-admin" not in names
    # an existing store (no new bootstrap token): the demo makes its own admin
    again = await demo_tokens(state.sessions, await bootstrap_admin(state.sessions, None))
    assert again["admin"] != token


async def test_a_console_orphaned_while_it_started_stops() -> None:
    """The console is told its supervisor's pid: when the supervisor died before the watch
    began (a slow start under load), the console's parent is already another process, and
    the console must stop rather than take that process for its supervisor."""
    server = _Server(uvicorn.Config(app=lambda *_: None))
    gone = os.getpid()  # not this process's parent: as if the supervisor were gone
    await asyncio.wait_for(_exit_when_orphaned(server, gone), WAIT)
    assert server.should_exit


def test_console_connections_are_accepted_with_nodelay() -> None:
    """The console's socket says TCP, so asyncio turns Nagle off on each accepted connection:
    a response written as head then body must not wait for the client's delayed ACK."""
    import asyncio
    import socket as sockets

    listener = bind_console("127.0.0.1", 0)
    seen: list[int] = []

    async def main() -> None:
        done = asyncio.Event()

        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            seen.append(conn.getsockopt(sockets.IPPROTO_TCP, sockets.TCP_NODELAY))
            writer.close()
            done.set()

        server = await asyncio.start_server(accepted, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            _, w = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.wait_for(done.wait(), 60)
            w.close()

    try:
        asyncio.run(main())
    finally:
        listener.close()
    assert seen and seen[0] != 0

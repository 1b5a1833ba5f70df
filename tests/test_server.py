"""`hypercare up` as a supervisor: the gateway outlives its console."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from hypercare.telemetry import segments
from tests.conftest import free_port
from tests.gateway.helpers import Upstream

HYPERCARE = [sys.executable, "-m", "hypercare"]


class Output:
    """Collects a process's merged output line by line (so its pipe never fills up)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def find(self, pattern: str) -> list[re.Match[str]]:
        return [m for line in list(self.lines) if (m := re.search(pattern, line))]


def wait_until(check: Callable[[], object], what: str, timeout: float = 120) -> None:
    """Poll `check` until true; generous, because the suite runs on busy shared cores."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _stored_request_ids(db: Path) -> Counter[str]:
    """Every call's request id as stored by the console, decoded from its blocks."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        blocks = conn.execute("SELECT calls FROM telemetry_segments").fetchall()
    return Counter(
        segments.record_of(row).request_id for (calls,) in blocks for row in segments.loads(calls)
    )


def _start_up(tmp_path: Path, upstream: Upstream) -> tuple[subprocess.Popen[str], Output]:
    cfg = tmp_path / "hc.yaml"
    cfg.write_text(
        "gateway:\n"
        "  upstreams:\n"
        f"    shop: {{targets: ['127.0.0.1:{upstream.port}']}}\n"
        "  routes:\n"
        "    - {name: items, match: {path: /items/*}, upstream: shop}\n"
    )
    args = [
        *HYPERCARE, "up", "--config", str(cfg), "--data-dir", str(tmp_path),
        "--console-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0",
        "--gateway-admin-listen", f"127.0.0.1:{free_port()}", "--workers", "2",
    ]  # fmt: skip
    env = {**os.environ, "HYPERCARE_ADMIN_TOKEN": "hc_supervisor-test-admin"}
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # a process group of its own, as in a terminal
    )
    return proc, Output(proc)


def _url_of(out: Output, what: str) -> str:
    (found,) = out.find(rf"^{what}: (http://127\.0\.0\.1:\d+)/")
    return found[1]


def _load(url: str, answered: list[str], failed: list[str], stop: threading.Event) -> None:
    """GET through the gateway on one kept-alive connection until `stop` (at most 3000)."""
    with httpx.Client(timeout=10) as client:
        for i in range(3000):
            if stop.is_set():
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
    proc, out = _start_up(tmp_path, upstream)
    stop = threading.Event()
    loaders: list[threading.Thread] = []
    try:
        wait_until(lambda: out.find(r"^console: http://127\.0\.0\.1:(\d+)/"), "the console URL")
        wait_until(lambda: out.find(r"console started \(pid (\d+)\)"), "the console pid")
        console = _url_of(out, "console")
        gateway = _url_of(out, "gateway")
        first_pid = int(out.find(r"console started \(pid (\d+)\)")[0][1])
        wait_until(lambda: _ready(f"{console}/readyz"), "the console to be ready")

        answered: list[str] = []
        failed: list[str] = []
        loaders = [
            threading.Thread(target=_load, args=(gateway, answered, failed, stop), daemon=True)
            for _ in range(4)
        ]
        for t in loaders:
            t.start()
        wait_until(lambda: len(answered) >= 300, "traffic through the gateway")
        os.kill(first_pid, signal.SIGKILL)
        # the supervisor notices, logs why and starts a new console; traffic goes on
        wait_until(lambda: "console killed by signal SIGKILL" in out.text, "the death logged")
        wait_until(lambda: len(out.find(r"console started \(pid (\d+)\)")) >= 2, "a new console")
        # the load goes on over the whole outage, until the new console answers
        wait_until(lambda: _ready(f"{console}/readyz"), "the restarted console to be ready")
        during = len(answered)
        wait_until(lambda: len(answered) >= during + 200, "traffic after the restart")
        stop.set()
        for t in loaders:
            t.join(30)
        assert not failed, failed[:5]
        assert proc.poll() is None

        # the new console came up on the same URL and the workers' records all arrive: the
        # spooled batches replayed, a batch whose answer the kill cut off stored once
        expected = Counter(answered)
        assert len(expected) == len(answered)
        db = tmp_path / "hypercare.db"
        wait_until(
            lambda: sum(_stored_request_ids(db).values()) >= len(answered),
            "every answered call stored",
        )
        assert _stored_request_ids(db) == expected
        assert not list(tmp_path.rglob("*.batch"))
    finally:
        stop.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
            upstream.stop()
    assert proc.returncode == 0, out.text[-3000:]
    assert "Traceback" not in out.text, out.text[-3000:]


def test_a_killed_worker_is_restarted_and_ctrl_c_stops_everything_in_order(
    tmp_path: Path,
) -> None:
    upstream = Upstream("shop")
    proc, out = _start_up(tmp_path, upstream)
    started = r"gateway worker 0 started \(pid (\d+)\)"
    try:
        wait_until(lambda: out.find(r"^console: http://"), "the console URL")
        wait_until(lambda: out.find(started), "worker 0's pid")
        gateway = _url_of(out, "gateway")
        console = _url_of(out, "console")
        wait_until(lambda: _ready(f"{console}/readyz"), "the console to be ready")
        assert httpx.get(f"{gateway}/items/1").status_code == 200
        os.kill(int(out.find(started)[0][1]), signal.SIGKILL)
        wait_until(lambda: len(out.find(started)) == 2, "worker 0 started again")
        assert "gateway worker 0 killed by signal SIGKILL (9)" in out.text
        kept = tmp_path / "gateway" / "last-good.yaml"
        assert f"worker 0 starts from {kept}" in out.text
        assert kept.read_text() == (tmp_path / "hc.yaml").read_text()
        for i in range(20):  # fresh connections reach both workers
            assert httpx.get(f"{gateway}/items/{i}").status_code == 200
        # Ctrl-C reaches the whole group: the workers drain, the console (which ignores
        # SIGINT) takes their last records and is stopped last by the supervisor
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        upstream.stop()
    assert proc.returncode == 0, out.text[-3000:]
    assert "Traceback" not in out.text and "console unreachable" not in out.text, out.text
    assert not list(tmp_path.rglob("*.batch"))
    with sqlite3.connect(tmp_path / "hypercare.db") as db:
        (stored,) = db.execute("SELECT sum(records) FROM telemetry_batches").fetchone()
    # a record the killed worker had not shipped yet is lost with it; the rest are stored
    assert 20 <= stored <= 21

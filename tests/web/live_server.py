"""Run `hypercare up` as a real server on loopback for browser tests and screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_chromium() -> str:
    """Debian's Chromium, or skip (fail under CI=true). Playwright never downloads one."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return path
    message = f"Chromium is not installed at {CHROMIUM}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: .ci/run installs it with `need chromium chromium`)")
    pytest.skip(f"{message}; `apt-get install chromium` to run the browser tests")


@dataclass(frozen=True)
class LiveServer:
    url: str
    admin_token: str

    def token(self, role: str, name: str) -> str:
        r = httpx.post(
            f"{self.url}/api/v1/tokens",
            json={"name": name, "role": role},
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        r.raise_for_status()
        token: str = r.json()["token"]
        return token

    def api(self, method: str, path: str, token: str, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


@contextmanager
def running_console(
    data_dir: Path, config_text: str = "", args: tuple[str, ...] = ()
) -> Iterator[LiveServer]:
    """`hypercare up` on a free loopback port with a SQLite store in `data_dir`; `args` are
    added to its command line (e.g. `--workers 0` to run without the gateway)."""
    port = free_port()
    admin = "hc_browser-test-admin-" + os.urandom(8).hex()
    config = data_dir / "hypercare.yaml"
    config.write_text(config_text or "web:\n  live_check_interval: 300ms\n  poll_interval: 1s\n")
    env = {**os.environ, "HYPERCARE_ADMIN_TOKEN": admin}
    env.pop("HYPERCARE_DATABASE_URL", None)
    log = (data_dir / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercare",
            "up",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            "--console-listen",
            f"127.0.0.1:{port}",
            # its gateway on free ports: the defaults may be held by another process
            "--gateway-listen",
            f"127.0.0.1:{free_port()}",
            "--gateway-admin-listen",
            f"127.0.0.1:{free_port()}",
            *args,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"hypercare up exited: {(data_dir / 'server.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("hypercare up did not become ready in 30 s")
            time.sleep(0.1)
        yield LiveServer(url=url, admin_token=admin)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()

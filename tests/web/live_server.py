"""Run `hypercare up` as a real server on loopback for browser tests and screenshots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import hypercare_up

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
    """`hypercare up` on loopback ports it binds itself, with a SQLite store in `data_dir`;
    `args` are added to its command line (e.g. `--workers 0` to run without the gateway)."""
    admin = "hc_browser-test-admin-" + os.urandom(8).hex()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "hypercare.yaml"
    config.write_text(config_text or "web:\n  live_check_interval: 300ms\n  poll_interval: 1s\n")
    with hypercare_up(
        data_dir,
        config=config,
        args=args,
        env={"HYPERCARE_ADMIN_TOKEN": admin},
        timeout=30,
        log=data_dir / "server.log",
    ) as up:
        yield LiveServer(url=up.url, admin_token=admin)

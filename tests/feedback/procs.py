"""Real peers for end-to-end tests: the console as a subprocess, Alertmanager, binaries."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.conftest import IN_CI, free_port

ADMIN_TOKEN = "hc_feedback-e2e-admin-token"
T = TypeVar("T")


def require_binary(path: str, package: str) -> str:
    """Skip (or under CI=true fail) when a Debian-packaged binary is missing."""
    found = shutil.which(path)
    if found:
        return found
    message = f"{path} is not installed (Debian package {package})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true: .ci/run must install it")
    pytest.skip(f"{message}; apt-get install -y {package} to run this test")


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    """Poll `probe` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            got = probe()
            if got:
                return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return ""


@contextlib.contextmanager
def console(tmp_path: Path, config_yaml: str) -> Iterator[str]:
    """`hypercare up` on a free loopback port with `config_yaml`; yields its base URL."""
    port = free_port()
    cfg = tmp_path / "hypercare.yaml"
    cfg.write_text(config_yaml)
    log = (tmp_path / "console.log").open("wb")
    env = {**os.environ, "HYPERCARE_ADMIN_TOKEN": ADMIN_TOKEN}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercare",
            "up",
            "--config",
            str(cfg),
            "--data-dir",
            str(tmp_path / "data"),
            "--console-listen",
            f"127.0.0.1:{port}",
            # its gateway on free ports: the defaults may be held by another process
            "--gateway-listen",
            f"127.0.0.1:{free_port()}",
            "--gateway-admin-listen",
            f"127.0.0.1:{free_port()}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"hypercare up exited: {(tmp_path / 'console.log').read_text()}"
                )
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200

        wait_for(ready, "the console to be ready")
        yield base
    finally:
        _stop(proc)
        log.close()


@contextlib.contextmanager
def alertmanager(tmp_path: Path, webhook_url: str, token: str) -> Iterator[str]:
    """A real Prometheus Alertmanager on loopback whose one receiver is `webhook_url`."""
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    port = free_port()
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(
        f"""route:
  receiver: hypercare
  group_by: [alertname, instance]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hypercare
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            credentials: {token}
"""
    )
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={cfg}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"alertmanager exited: {(tmp_path / 'alertmanager.log').read_text()}"
                )
            return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200

        wait_for(ready, "Alertmanager to be ready")
        yield base
    finally:
        _stop(proc)
        log.close()

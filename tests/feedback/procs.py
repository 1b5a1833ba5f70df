"""Real peers for end-to-end tests: the console as a subprocess, Alertmanager, binaries."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.conftest import IN_CI
from tests.support import free_port, hypercare_up, wait_until

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
    """`hypercare up` on loopback ports it binds itself, with `config_yaml`; yields its
    base URL."""
    cfg = tmp_path / "hypercare.yaml"
    cfg.write_text(config_yaml)
    with hypercare_up(
        tmp_path / "data", config=cfg, env={"HYPERCARE_ADMIN_TOKEN": ADMIN_TOKEN}
    ) as up:
        yield up.url


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

        wait_until(ready, 30, "Alertmanager to be ready")
        yield base
    finally:
        _stop(proc)
        log.close()

"""A real peer: Debian's nginx writes JSON access logs in front of a test upstream,
`hypercare tail` ships them into `hypercare up`; when the upstream starts failing, detection
opens an issue for the external route, and a support ticket citing a request id from
nginx's log links to it. nginx's log is rotated (rename, then SIGUSR1) on the way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import start_up, wait_until
from tests.telemetry.nginx_peer import NGINX, Nginx, Upstream

pytestmark = pytest.mark.skipif(
    NGINX is None and os.environ.get("CI") != "true",
    reason="nginx is not installed (apt-get install nginx)",
)

ADMIN = "hc_tail-nginx-admin-token"
H = {"Authorization": f"Bearer {ADMIN}"}
CONFIG = """\
external_routes:
  - name: orders.get
    match: {path: "/orders/{id}", methods: [GET], host: shop.example.com}
    tags: {component: orders}
detection:
  interval: 1s
  window: 10s
"""


class Load:
    """Requests through nginx from a thread, a few dozen a second."""

    def __init__(self, nginx: Nginx) -> None:
        self.nginx = nginx
        self.sent = 0
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            status, _ = self.nginx.get(f"/orders/{self.sent % 50}")
            self.statuses.append(status)
            self.sent += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[tuple[Upstream, Nginx]]:
    (tmp_path / "nginx").mkdir()
    with (
        Upstream(tmp_path / "upstream.sock") as upstream,
        Nginx(tmp_path / "nginx", upstream.path) as nginx,
    ):
        yield upstream, nginx


def logged(path: Path) -> list[str]:
    """The JSON lines of an access log."""
    return [line for line in path.read_text().splitlines() if line.startswith("{")]


def gateway_issue(base: str, route: str) -> int | None:
    r = httpx.get(f"{base}/api/v1/signals", params={"source": "gateway", "limit": 50}, headers=H)
    for s in r.json()["items"]:
        if s["route"] == route and s["issue_id"] and s["status"] == "firing":
            return int(s["issue_id"])
    return None


def test_nginx_logs_tailed_into_up_open_an_issue_a_ticket_links_to(
    tmp_path: Path, peers: tuple[Upstream, Nginx]
) -> None:
    upstream, nginx = peers
    cfg = tmp_path / "hypercare.yaml"
    cfg.write_text(CONFIG)
    data = tmp_path / "data"
    up = start_up(data, config=cfg, args=["--workers", "0"], env={"HYPERCARE_ADMIN_TOKEN": ADMIN})
    tail: subprocess.Popen[bytes] | None = None
    try:
        token_cmd = ["telemetry", "node-token", "--name", "edge-nginx", "--data-dir", str(data)]
        token = (
            subprocess.run(
                [sys.executable, "-m", "hypercare", *token_cmd],
                capture_output=True,
                check=True,
                timeout=60,
            )
            .stdout.decode()
            .strip()
        )
        tail_log = (tmp_path / "tail.log").open("wb")
        tail = subprocess.Popen(
            [
                *(sys.executable, "-m", "hypercare", "tail", str(nginx.access_log)),
                *("--format", "nginx-json", "--config", str(cfg), "--from-start"),
                *("--data-dir", str(tmp_path / "tail")),
            ],
            stdout=tail_log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HYPERCARE_CONSOLE_URL": up.url, "HYPERCARE_NODE_TOKEN": token},
        )

        def calls(**params: str) -> list[dict[str, object]]:
            r = httpx.get(f"{up.url}/api/v1/calls", params=params, headers=H, timeout=10)
            assert r.status_code == 200, r.text
            items: list[dict[str, object]] = r.json()["items"]
            return items

        with Load(nginx) as load:
            wait_until(lambda: load.sent > 100, 60, "healthy traffic through nginx")
            wait_until(
                lambda: calls(route="orders.get", limit="1"), 60, "tailed calls in the console"
            )
            # logrotate's way: rename, then tell nginx to reopen its log
            os.rename(nginx.access_log, nginx.access_log.with_suffix(".log.1"))
            nginx.reopen()
            wait_until(lambda: nginx.access_log.exists(), 30, "nginx to reopen its log")
            wait_until(lambda: load.sent > 200, 60, "more healthy traffic")
            # a line that is not nginx's JSON: counted with a sample, not dropped silently
            with nginx.access_log.open("ab") as f:
                f.write(b"this is not json\n")
            upstream.failing = True
            issue = wait_until(
                lambda: gateway_issue(up.url, "orders.get"), 120, "an issue for orders.get"
            )
            failed = wait_until(
                lambda: [
                    line["request_id"]
                    for line in map(json.loads, logged(nginx.access_log))
                    if line["status"] == "500"
                ],
                30,
                "a failed call in nginx's log",
            )
        request_id = failed[-1]
        ticket = {
            "type": "ticket",
            "subject": "My order page fails",
            "description": "It shows an error.",
            "requester": "c@x.io",
            "channel": "email",
            "request_ids": [request_id],
        }
        r = httpx.post(f"{up.url}/api/v1/feedback", json=ticket, headers=H, timeout=30)
        assert r.status_code == 202, r.text
        got = r.json()["issues"]
        assert got == [issue], "the ticket citing nginx's request id must join the issue"
        reasons = " | ".join(
            reason
            for link in httpx.get(f"{up.url}/api/v1/issues/{issue}", headers=H).json()["links"]
            for reason in link["reasons"]
        )
        assert f"cites request id {request_id[:12]}" in reasons
        (call,) = calls(request_id=request_id)
        assert call["route"] == "orders.get" and call["status"] == 500

        # every line nginx wrote is a call in the console, across the rotation
        def all_lines() -> int:
            n = 0
            for name in ("access.log", "access.log.1"):
                n += len(logged(nginx.root / name))
            return n

        def stored() -> int:
            r = httpx.get(
                f"{up.url}/api/v1/analytics/routes",
                params={"from": str(int(time.time() - 3600))},
                headers=H,
            )
            rows = {row["key"]: row for row in r.json()["rows"]}
            return int(rows["orders.get"]["requests"]) if "orders.get" in rows else 0

        last: list[tuple[int, int]] = []

        def same() -> bool:
            last.append((stored(), all_lines()))
            return last[-1][0] == last[-1][1]

        try:
            wait_until(same, 60, "every nginx line to be stored")
        except AssertionError:
            raise AssertionError(f"stored, logged: {last[-3:]}") from None
        seen = httpx.get(f"{up.url}/api/v1/telemetry/unparsed", headers=H).json()["sources"]
        assert [(s["total"], s["sample"]) for s in seen] == [(1, "this is not json")]
        assert seen[0]["source"] == f"edge-nginx nginx-json:{nginx.access_log}"
    finally:
        if tail is not None and tail.poll() is None:
            tail.send_signal(signal.SIGTERM)
            try:
                tail.wait(30)
            except subprocess.TimeoutExpired:
                tail.kill()
                tail.wait(10)
        up.stop()
    assert tail.returncode == 0, (tmp_path / "tail.log").read_text()
    assert "0 dropped" in (tmp_path / "tail.log").read_text()

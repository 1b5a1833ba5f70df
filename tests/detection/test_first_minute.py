"""A route that is bad from its first minute, end to end through `hypercare up` on loopback.

A fresh console (no history, no baselines) and from the first call: the catalog search is
slow (every call a 200, 1.2 s late) and a credential-stuffing burst sends most calls with a
wrong API key. Expected: a latency issue that is not P1, and a separate security issue
labelled `security` — both within the first minute and a half, with no 5xx-rate signal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hypercare.demo.config import demo_yaml
from hypercare.demo.shop import Faults, Shop
from hypercare.demo.traffic import Traffic
from tests.gateway.helpers import LoopThread
from tests.support import start_up, wait_until

ADMIN = "hc_first-minute-admin-token"
H = {"Authorization": f"Bearer {ADMIN}"}


async def idle(deadline: float = 15.0) -> None:
    """Return once every other task of this loop has finished (or after `deadline` s)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    while loop.time() < until:
        if not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            return
        await asyncio.sleep(0.05)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[dict[str, Any]]:
    loop = LoopThread()
    shop = Shop()
    loop.run(shop.start())
    shop.services["catalog"].faults = Faults(delay_ms=1200, paths=("/catalog/search",))
    cfg = tmp_path / "hypercare.yaml"
    cfg.write_text(demo_yaml(shop.ports, "detection:\n  interval: 1s\n"))
    try:
        # its output goes to a file: the gateway logs every refused credential
        up = start_up(
            tmp_path / "data",
            config=cfg,
            args=["--workers", "1"],
            env={"HYPERCARE_ADMIN_TOKEN": ADMIN},
        )
    except BaseException:
        loop.run(shop.close())
        loop.stop()
        raise
    port = up.gateway_port
    good = Traffic("127.0.0.1", port, rate=20, api_key="demo-shop-web-key-0001", workers=24)
    stuffing = Traffic("127.0.0.1", port, rate=40, api_key="guessed-key-000", seed=5)
    try:
        loop.call(good.start)
        loop.call(stuffing.start)
        yield {"base": up.url}
    finally:
        loop.run(good.stop())
        loop.run(stuffing.stop())
        up.stop()
        # let the shop's handlers still sleeping in the injected delay finish: a connection
        # coroutine left suspended when the loop closes complains at garbage collection
        loop.run(idle(), timeout=20)
        loop.run(shop.close())
        loop.stop()


def signals(base: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{base}/api/v1/signals", params={"source": "gateway", "limit": 100}, headers=H, timeout=30
    )
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def firing(base: str, key: str) -> dict[str, Any] | None:
    for s in signals(base):
        if s["dedup_key"] == key and s["status"] == "firing" and s["issue_id"]:
            return s
    return None


def test_slow_and_stuffed_routes_open_issues_from_the_first_minute(fresh: dict[str, Any]) -> None:
    base = fresh["base"]
    slow = wait_until(
        lambda: firing(base, "gateway:p95-above-bound:catalog-search"),
        120,
        "the latency signal",
        interval=0.25,
    )
    stuffed = wait_until(
        lambda: firing(base, "security:auth-failure-share:order-detail"),
        60,
        "the security signal",
        interval=0.25,
    )
    latency = httpx.get(f"{base}/api/v1/issues/{slow['issue_id']}", headers=H, timeout=30).json()
    assert latency["priority"] in ("P2", "P3")  # slow but nothing failing: never P1
    assert latency["route"] == "catalog-search"
    security = httpx.get(
        f"{base}/api/v1/issues/{stuffed['issue_id']}", headers=H, timeout=30
    ).json()
    assert security["id"] != latency["id"]
    assert "security" in security["labels"]
    assert security["title"].startswith("Security: possible credential attack on")
    assert security["mttd_seconds"] is not None
    assert not any("5xx-rate" in s["dedup_key"] for s in signals(base))

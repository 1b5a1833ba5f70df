"""The demo's review part through a real `hypercare up` with the demo configuration: its
runbook matches the payments issue, and once the issue is resolved the scenario finds the
drafted review and says what it holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from hypercare.demo.config import demo_yaml
from hypercare.demo.run import demo_extra
from hypercare.demo.scenario import Scenario
from hypercare.demo.shop import Shop
from hypercare.demo.traffic import Traffic
from tests.support import hypercare_up

ADMIN = "hc_demo-review-admin-0001"
H = {"Authorization": f"Bearer {ADMIN}"}


async def test_the_scenario_tells_the_drafted_review(tmp_path: Path) -> None:
    shop = Shop()  # not started: only its ports are written into the configuration
    cfg = tmp_path / "hypercare.yaml"
    cfg.write_text(
        demo_yaml({"catalog": 1, "orders": 2, "payments": 3}, demo_extra("http://127.0.0.1:1")),
        encoding="utf-8",
    )
    lines: list[str] = []
    with hypercare_up(
        tmp_path / "data",
        config=cfg,
        args=["--workers", "0"],
        env={"HYPERCARE_ADMIN_TOKEN": ADMIN},
    ) as up:
        async with httpx.AsyncClient(base_url=up.url, headers=H) as api:
            r = await api.post(
                "/api/v1/issues",
                json={"title": "Payments down", "priority": "P1", "component": "payments"},
            )
            issue_id = r.json()["id"]
            knowledge = (await api.get(f"/api/v1/issues/{issue_id}/knowledge")).json()
            for to in ("triaged", "resolved"):
                r = await api.post(f"/api/v1/issues/{issue_id}/transitions", json={"to": to})
                assert r.status_code == 200, r.text
            host, port = up.url.removeprefix("http://").rsplit(":", 1)
            scenario = Scenario(
                console=(host, int(port)),
                gateway_origin="http://127.0.0.1:1",
                tokens={"support": ADMIN},
                shop=shop,
                traffic=Traffic("127.0.0.1", 1, rate=1.0, api_key="unused"),
                say=lines.append,
            )
            scenario.issue_id = issue_id
            await scenario.tell_review(asyncio.Event(), wait=60)
            await scenario.console.close()
    assert knowledge["matched_by"] == {"payments-provider": ["component payments"]}
    told = [line for line in lines if "post-incident review #" in line]
    assert told and "0 failed calls" in told[0] and "n/a" in told[0], lines

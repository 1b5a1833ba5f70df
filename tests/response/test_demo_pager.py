"""The demo's pager: configured as a webhook channel, paged for a P1 through a real
`hypercare up`, and acknowledged by the scenario through the signed link."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from hypercare.config import parse_config
from hypercare.demo.config import demo_yaml
from hypercare.demo.run import demo_extra
from hypercare.demo.scenario import Scenario
from hypercare.demo.shop import Shop
from hypercare.demo.traffic import Traffic
from tests.support import hypercare_up

ADMIN = "hc_demo-pager-admin-0001"
H = {"Authorization": f"Bearer {ADMIN}"}


def test_the_demo_config_pages_its_schedule_through_a_policy() -> None:
    text = demo_yaml(
        {"catalog": 1, "orders": 2, "payments": 3},
        demo_extra("http://x", "http://127.0.0.1:5/page"),
    )
    cfg = parse_config(text, "<demo>")
    (channel,) = cfg.response.channels
    assert (channel.name, channel.type, channel.url) == (
        "oncall-pager",
        "webhook",
        "http://127.0.0.1:5/page",
    )
    (policy,) = cfg.response.policies
    assert policy.levels == ["P1", "P2"]
    assert [s.notify for s in policy.steps] == [["payments-primary"], ["lee"]]
    assert [m for layer in cfg.response.schedules[0].layers for m in layer.members] == ["dana"]


async def test_the_scenario_acknowledges_the_page_through_its_link(tmp_path: Path) -> None:
    shop = Shop()
    await shop.start()
    await shop.pager.start()
    cfg = tmp_path / "hypercare.yaml"
    cfg.write_text(
        demo_yaml(shop.ports, demo_extra("http://127.0.0.1:1", shop.pager.url, step_wait=2)),
        encoding="utf-8",
    )
    lines: list[str] = []
    try:
        with hypercare_up(
            tmp_path / "data",
            config=cfg,
            args=["--workers", "0"],
            env={"HYPERCARE_ADMIN_TOKEN": ADMIN},
        ) as up:
            async with httpx.AsyncClient(base_url=up.url, headers=H) as api:
                r = await api.post(
                    "/api/v1/issues", json={"title": "Payments down", "priority": "P1"}
                )
                issue_id = r.json()["id"]
                host, port = up.url.removeprefix("http://").rsplit(":", 1)
                scenario = Scenario(
                    console=(host, int(port)),
                    gateway_origin="http://127.0.0.1:1",
                    tokens={},
                    shop=shop,
                    traffic=Traffic("127.0.0.1", 1, rate=1.0, api_key="unused"),
                    say=lines.append,
                )
                await scenario.acknowledge_from_the_page(issue_id, asyncio.Event())
                await scenario.console.close()
                issue = (await api.get(f"/api/v1/issues/{issue_id}")).json()
                log = (await api.get(f"/api/v1/issues/{issue_id}/notifications")).json()
    finally:
        await shop.close()
    assert issue["acknowledged_at"] is not None, lines
    assert any("pager rings" in line for line in lines), lines
    assert any("escalates to the lead" in line for line in lines), lines
    assert any("-> 200/200" in line for line in lines), lines
    # the schedule's on-call person, then the lead: both through the pager channel
    assert [(d["channel"], d["event"], d["state"]) for d in log][:2] == [
        ("dana/0", "page", "sent"),
        ("lee/0", "page", "sent"),
    ]
    found = shop.pager.page_for(issue_id)
    assert found is not None and found[1]["issue"]["priority"] == "P1"

"""Start and stop the demo next to a running console: shop, traffic and the scenario."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig, parse_config
from hypercare.demo.config import DEMO_KEY, demo_yaml
from hypercare.demo.scenario import WIDGET_KEY, Scenario
from hypercare.demo.shop import Shop
from hypercare.demo.traffic import Traffic

# the demo policy's first step waits this long for an acknowledgement before escalating
DEMO_STEP_WAIT = 20


def demo_extra(
    gateway_origin: str, pager_url: str | None = None, step_wait: int = DEMO_STEP_WAIT
) -> str:
    """The feedback, detection and response settings of the demo (a short validation
    window). A P1 or P2 starts the `launch-p1` policy: it pages whoever is on call on the
    `payments-primary` schedule (dana), then, unacknowledged after `DEMO_STEP_WAIT` s, the
    lead (lee); both through the demo's loopback pager."""
    extra = (
        "feedback:\n"
        "  widget_keys:\n"
        f"    - {{key: {WIDGET_KEY}, name: shop web, origins: ['{gateway_origin}']}}\n"
        "detection:\n"
        "  validation_window: 45s\n"
    )
    if pager_url:
        extra += (
            "response:\n"
            "  channels:\n"
            f"    - {{name: oncall-pager, type: webhook, url: '{pager_url}'}}\n"
            "  people:\n"
            "    - {name: dana, full_name: Dana (payments on call),"
            " contacts: [{type: webhook, channel: oncall-pager}]}\n"
            "    - {name: lee, full_name: Lee (engineering lead),"
            " contacts: [{type: webhook, channel: oncall-pager}]}\n"
            "  schedules:\n"
            "    - name: payments-primary\n"
            "      time_zone: UTC\n"
            "      layers:\n"
            "        - {rotation: weekly, handoff: '09:00', start: 2025-01-06, members: [dana]}\n"
            "  policies:\n"
            "    - name: launch-p1\n"
            "      levels: [P1, P2]\n"
            "      steps:\n"
            f"        - {{notify: [payments-primary], wait: {step_wait}s}}\n"
            "        - {notify: [lee]}\n"
            "  rules:\n"
            "    - {match: {priority: [P1, P2], events: [priority, escalation]},"
            " notify: [oncall-pager]}\n"
        )
    return extra


async def prepare(gateway_listen: str) -> tuple[Shop, HypercareConfig, str]:
    """Start the shop's services and the pager, and build the configuration that routes to
    them (parsed, and its YAML source)."""
    shop = Shop()
    await shop.start()
    await shop.pager.start()
    origin = f"http://{gateway_listen}"
    text = demo_yaml(shop.ports, demo_extra(origin, shop.pager.url))
    return shop, parse_config(text, "<demo>"), text


@dataclass
class Demo:
    shop: Shop
    traffic: Traffic
    scenario: Scenario
    tokens: dict[str, str]
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        self.stop_event.set()
        await self.traffic.stop()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.shop.close()


async def demo_tokens(
    sessions: async_sessionmaker[AsyncSession], admin: str | None = None
) -> dict[str, str]:
    """Fresh tokens for the demo's people: an admin to sign in with, support, on-call.

    `admin`, the bootstrap admin token `up` has just created, is used as the admin's
    instead of a second one, so there is one token to sign in with."""
    out = {} if admin is None else {Role.admin.value: admin}
    async with sessions() as session, session.begin():
        for role, name in (
            (Role.admin, "demo-admin"),
            (Role.support, "demo-support"),
            (Role.responder, "dana"),
        ):
            if role.value in out:
                continue
            created = await auth_service.create_token(session=session, name=name, role=role)
            out[role.value] = created.token
    return out


async def start(
    sessions: async_sessionmaker[AsyncSession],
    shop: Shop,
    *,
    console: tuple[str, int],
    gateway: tuple[str, int],
    rate: float = 25.0,
    admin_token: str | None = None,
) -> Demo:
    tokens = await demo_tokens(sessions, admin_token)
    traffic = Traffic(gateway[0], gateway[1], rate=rate, api_key=DEMO_KEY)
    scenario = Scenario(
        console=console,
        gateway_origin=f"http://{gateway[0]}:{gateway[1]}",
        tokens=tokens,
        shop=shop,
        traffic=traffic,
    )
    demo = Demo(shop, traffic, scenario, tokens)
    traffic.start()
    demo.task = asyncio.create_task(scenario.run(demo.stop_event), name="demo-scenario")
    return demo

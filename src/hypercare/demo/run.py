"""Start and stop the demo next to a running console: shop, traffic and the scenario."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.comms import service as comms_service
from hypercare.config import HypercareConfig, parse_config
from hypercare.demo.config import DEMO_KEY, demo_yaml
from hypercare.demo.scenario import WIDGET_KEY, Scenario
from hypercare.demo.shop import Shop
from hypercare.demo.traffic import Traffic
from hypercare.store.base import utcnow

# the demo policy's first step waits this long for an acknowledgement before escalating
DEMO_STEP_WAIT = 20


def demo_launch(now: datetime) -> str:
    """The demo's launch: started a few minutes before the demo, two weeks long, with SLOs
    on the payment routes and exit criteria the incident breaks and the hotfix restores."""
    start = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)
    return (
        "launches:\n"
        "  - name: shop-launch\n"
        f"    start: {start.isoformat()}\n"
        f"    end: {(start + timedelta(days=14)).isoformat()}\n"
        "    time_zone: Europe/Berlin\n"
        "    components: [payments, orders]\n"
        "    objectives:\n"
        "      - Checkout works for every shopper\n"
        "      - Support can take over in two weeks\n"
        "    kpis:\n"
        "      - {name: payment status p95, target: under 500 ms, route: payment-status,"
        " metric: p95, window: 15m}\n"
        "      - {name: order error rate, target: under 0.5 %, route: order-create,"
        " metric: error_rate, window: 1h}\n"
        "    roster:\n"
        "      triage: {responsible: [dana], accountable: lee, informed: [support]}\n"
        "      resolution: {responsible: [dana], accountable: lee, consulted: [payments-team]}\n"
        "      communication: {responsible: [support], accountable: lee}\n"
        "      escalation: {responsible: [dana], accountable: lee}\n"
        "      exit_approval: {responsible: [lee], accountable: cto}\n"
        "    slos:\n"
        "      - {name: payment-status-availability, route: payment-status, target: 99.5}\n"
        "      - {name: payment-status-latency, route: payment-status, kind: latency,"
        " threshold: 500ms, target: 95}\n"
        "      - {name: orders-availability, component: orders, target: 99.5}\n"
        "    exit_criteria:\n"
        "      - no_open: [P1, P2]\n"
        "      - no_new: {priority: [P1], for: 72h}\n"
        "      - metric: {route: payment-status, metric: error_rate, max: 0.01, window: 5m}\n"
        "      - slo_met: {for: 48h}\n"
        "      - tickets_per_day: {max: 10}\n"
    )


def demo_extra(
    gateway_origin: str,
    pager_url: str | None = None,
    step_wait: int = DEMO_STEP_WAIT,
    now: datetime | None = None,
) -> str:
    """The feedback, detection, review, status and response settings of the demo (a short
    validation window) and its launch. A P1 or P2 starts the `launch-p1` policy: it pages
    whoever is on call on the `payments-primary` schedule (dana), then, unacknowledged after
    `step_wait` s, the lead (lee); both through the demo's loopback pager."""
    extra = (
        "feedback:\n"
        "  widget_keys:\n"
        f"    - {{key: {WIDGET_KEY}, name: shop web, origins: ['{gateway_origin}']}}\n"
        "detection:\n"
        "  validation_window: 45s\n"
        "review:\n"
        "  runbooks:\n"
        "    - name: payments-provider\n"
        "      title: Payments provider errors or slow\n"
        "      components: [payments]\n"
        "      rules: [5xx-rate, p95-vs-baseline, p95-above-bound]\n"
        "      body: |\n"
        "        1. Open the route page of `payment-status`: error rate, p95, failing calls.\n"
        "        2. Check the provider's status page and the payments pool metrics.\n"
        "        3. If the pool is exhausted, roll out the last good payments build.\n"
        "        4. Post the deployment to hypercare so it validates the fix.\n"
        "status:\n"
        "  page: {name: Demo Shop status}\n"
        "  components:\n"
        "    - {name: Payments, description: Card payments and payment status,"
        " group: Checkout, routes: [payment-create, payment-status]}\n"
        "    - {name: Orders, group: Checkout, tags: {component: orders}}\n"
        "    - {name: Catalog, description: Search and product pages,"
        " tags: {component: catalog}}\n"
        "  thresholds:\n"
        "    major: {error_rate: 0.2, no_healthy_target: true}\n"
        "  hysteresis: {raise_after: 3s, clear_after: 15s}\n"
    )
    if pager_url:
        extra += (
            "response:\n"
            # the pager's status hook is the status page's subscriber: a URL on this machine,
            # which the URL guard refuses at each send unless the operator allows it
            f"  allow_private: ['{urlsplit(pager_url).hostname}']\n"
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
        # the status page's subscribers (the demo subscribes the pager's status hook)
        extra += "comms:\n  subscribers: {enabled: true}\n"
    return extra + demo_launch(now or datetime.now(UTC))


async def prepare(gateway_listen: str) -> tuple[Shop, HypercareConfig, str]:
    """Start the shop's services and the pager, and build the configuration that routes to
    them (parsed, and its YAML source)."""
    shop = Shop()
    await shop.start()
    await shop.pager.start()
    origin = f"http://{gateway_listen}"
    text = demo_yaml(shop.ports, demo_extra(origin, shop.pager.url))
    return shop, parse_config(text, "<demo>"), text


FAULT_AT_ENV = "HYPERCARE_DEMO_FAULT_AT"


def fault_at_from_env(default: float = 45.0) -> float:
    """Seconds from the demo's start to the payments fault: HYPERCARE_DEMO_FAULT_AT when it
    holds a number from 5 to 3600 (a shorter or longer wait for a presentation or a test),
    else `default`."""
    raw = os.environ.get(FAULT_AT_ENV, "").strip()
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if 5.0 <= value <= 3600.0 else default


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


async def demo_subscriber(sessions: async_sessionmaker[AsyncSession], url: str) -> None:
    """Subscribe the pager's status hook (a loopback webhook, which only the operator can
    add: the public form's URL guard refuses loopback) to every component; the demo's
    `response.allow_private` names its host, so the guard at each send allows it."""
    async with sessions() as session, session.begin():
        await comms_service.subscribe(
            session=session, kind="webhook", target=url, components=[], now=utcnow()
        )


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
    await demo_subscriber(sessions, shop.pager.status_hook_url)
    traffic = Traffic(gateway[0], gateway[1], rate=rate, api_key=DEMO_KEY)
    scenario = Scenario(
        console=console,
        gateway_origin=f"http://{gateway[0]}:{gateway[1]}",
        tokens=tokens,
        shop=shop,
        traffic=traffic,
        fault_at=fault_at_from_env(),
    )
    demo = Demo(shop, traffic, scenario, tokens)
    traffic.start()
    demo.task = asyncio.create_task(scenario.run(demo.stop_event), name="demo-scenario")
    return demo

"""The scripted launch: traffic, a payments incident, feedback, a hotfix, and its validation.

It drives hypercare only through its public HTTP API, with demo tokens, exactly as people
and tools would: the widget and support tickets post feedback, a responder acknowledges, a
deploy pipeline posts the hotfix. Detection, correlation, prioritisation and validation are
hypercare's own work; the scenario only prints what to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from hypercare.demo.http import Client, Response
from hypercare.demo.shop import Faults, Shop
from hypercare.demo.traffic import Traffic

log = logging.getLogger("hypercare.demo")

WIDGET_KEY = "wk_demo_shop_web_01"


def _secs(value: object) -> str:
    return f"{value:.0f} s" if isinstance(value, int | float) else "n/a"


class Scenario:
    def __init__(
        self,
        *,
        console: tuple[str, int],
        gateway_origin: str,
        tokens: dict[str, str],
        shop: Shop,
        traffic: Traffic,
        say: Callable[[str], None] = print,
        fault_at: float = 45.0,
        seed: int = 5,
    ) -> None:
        # one connection per call: the scenario is slow and idle connections time out
        self.console = Client(*console, timeout=15, keep_alive=False)
        self.origin = gateway_origin
        self.tokens = tokens
        self.shop = shop
        self.traffic = traffic
        self.say = say
        self.fault_at = fault_at
        self.rng = random.Random(seed)
        self.started = time.monotonic()
        self.issue_id: int | None = None

    def _clock(self) -> str:
        s = int(time.monotonic() - self.started)
        return f"{s // 60:02d}:{s % 60:02d}"

    def tell(self, text: str) -> None:
        self.say(f"[demo {self._clock()}] {text}")

    async def _api(self, method: str, path: str, role: str, body: object = None) -> Response:
        return await self.console.request(
            method, path, headers={"authorization": f"Bearer {self.tokens[role]}"}, json_body=body
        )

    async def _until(self, seconds: float, stop: asyncio.Event) -> bool:
        """Wait until `seconds` after the start; False when asked to stop."""
        delay = self.started + seconds - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        return not stop.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._launch(stop)
            await self._background(stop)
        except Exception:
            # the demo must never take the product down with it
            log.exception("demo scenario stopped")
        finally:
            await self.console.close()

    async def _launch(self, stop: asyncio.Event) -> None:
        t = self.fault_at
        self.tell(
            "launch day: shop traffic flows through the gateway; watch the overview and the "
            "launch scorecard (/launches/shop-launch)"
        )
        if not await self._until(t, stop):
            return
        self.shop.services["payments"].faults = Faults(
            error_rate=0.4, delay_ms=700, paths=("/payment/status",)
        )
        self.tell("payments starts failing: 40 % of /payment/status answer 503, +700 ms")
        if not await self._until(t + 15, stop):
            return
        failed = self.traffic.stats.recent_failures("/payment/status")
        r = await self.console.request(
            "POST",
            f"/api/v1/feedback?key={WIDGET_KEY}",
            headers={"origin": self.origin},
            json_body={
                "category": "bug",
                "message": "Payment stuck on 'checking status' after I paid",
                "url": f"{self.origin}/checkout/confirm",
                "request_ids": failed,
                "user_agent": "Mozilla/5.0 (demo)",
            },
        )
        self.tell(
            f"a shopper reports it in the in-app widget (cites {len(failed)} failed calls)"
            f" -> {r.status}"
        )
        if not await self._until(t + 25, stop):
            return
        for who, text in (
            ("ana@example.com", "Payment status updates are delayed for my order"),
            ("li@example.com", "Payment status page keeps spinning, was I charged?"),
        ):
            await self._api(
                "POST",
                "/api/v1/feedback",
                "support",
                {
                    "type": "ticket",
                    "subject": text,
                    "description": "Customer contacted support by chat.",
                    "requester": who,
                    "channel": "chat",
                    "severity": "high",
                },
            )
        self.tell("support files two tickets: 'payment status updates are delayed'")
        if not await self._until(t + 35, stop):
            return
        self.issue_id = await self._find_issue()
        if self.issue_id is None:
            self.tell("no gateway issue found yet; the demo keeps running")
            return
        await self.acknowledge_from_the_page(self.issue_id, stop)
        await self._api(
            "PATCH", f"/api/v1/issues/{self.issue_id}", "responder", {"assignee": "dana"}
        )
        await self._api(
            "POST",
            f"/api/v1/issues/{self.issue_id}/transitions",
            "responder",
            {"to": "investigating", "reason": "on it"},
        )
        self.tell(f"dana takes issue #{self.issue_id} and investigates")
        incident = await self._public_incident(self.issue_id)
        if not await self._until(t + 50, stop):
            return
        await self._public_update(incident, "identified", "identified")
        if not await self._until(t + 60, stop):
            return
        self.shop.services["payments"].faults = Faults()
        await self._api(
            "POST",
            "/api/v1/deployments",
            "responder",
            {
                "service": "payments",
                "version": "2.4.1-hotfix",
                "kind": "hotfix",
                "description": "connection pool size for the status poller",
                "issue_ids": [self.issue_id],
            },
        )
        self.tell("hotfix payments 2.4.1 deployed; hypercare now validates it on live traffic")
        self.tell(
            "the launch scorecard (/launches/shop-launch) turns green criterion by criterion "
            "as the fix is validated and the error rate recovers"
        )
        await self._public_update(incident, "monitoring", "monitoring")
        await self._resolve_when_operational(incident, stop)
        await self.tell_review(stop)

    async def tell_review(self, stop: asyncio.Event, wait: float = 240.0) -> None:
        """Once validation has resolved the issue, hypercare drafts its post-incident review
        from telemetry: say what it found (bounded wait; the demo goes on either way)."""
        if self.issue_id is None:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            r = await self._api("GET", f"/api/v1/issues/{self.issue_id}/review", "support")
            if r.status == 200:
                facts = r.json().get("facts") or {}
                radius = facts.get("blast_radius") or {}
                lead = facts.get("lead_times") or {}
                self.tell(
                    f"post-incident review #{r.json().get('id')} drafted from data: "
                    f"{radius.get('failed_calls', 0)} failed calls, "
                    f"{radius.get('consumer_count', 0)} consumer(s); first signal "
                    f"{_secs(lead.get('failure_to_signal_seconds'))} and first user report "
                    f"{_secs(lead.get('failure_to_user_report_seconds'))} after the first "
                    f"failing call (Reviews in the console)"
                )
                return
            if not await self._until(time.monotonic() - self.started + 5, stop):
                return
        self.tell(f"no review of #{self.issue_id} yet; it is drafted when the issue is resolved")

    async def _public_incident(self, issue_id: int) -> int | None:
        r = await self._api(
            "POST",
            "/api/v1/status/incidents",
            "responder",
            {
                "issue_id": issue_id,
                "name": "Payment status checks failing",
                "components": ["Payments"],
                "scenario": "outage",
                "workaround": "your payment went through; the status page of your order "
                "catches up in a few minutes",
                "next_update_in_minutes": 30,
            },
        )
        if r.status != 201:
            self.tell(f"could not open the public incident: {r.status}")
            return None
        self.tell("dana publishes a public incident from the issue: see /status")
        return int(r.json()["id"])

    async def _public_update(self, incident: int | None, status: str, scenario: str) -> None:
        if incident is None:
            return
        r = await self._api(
            "POST",
            f"/api/v1/status/incidents/{incident}/updates",
            "responder",
            {"status": status, "scenario": scenario, "next_update_in_minutes": 30},
        )
        told = len(self.shop.pager.status_updates)
        self.tell(
            f"public update on /status: {status} -> {r.status} (the page's webhook subscriber "
            f"has had {told} notice{'' if told == 1 else 's'} so far)"
        )

    async def _resolve_when_operational(self, incident: int | None, stop: asyncio.Event) -> None:
        """Resolve the public incident once traffic shows Payments operational again."""
        if incident is None:
            return
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not stop.is_set():
            r = await self._api("GET", "/api/v1/status/components", "support")
            states = {c["name"]: c["status"] for c in r.json()} if r.status == 200 else {}
            if states.get("Payments") == "operational":
                await self._public_update(incident, "resolved", "resolved")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2)

    async def _next_page(
        self, issue_id: int, after: int, within: float, stop: asyncio.Event
    ) -> tuple[int, dict[str, Any]] | None:
        pager = self.shop.pager
        deadline = time.monotonic() + within
        found = pager.page_for(issue_id, after)
        while found is None and time.monotonic() < deadline and not stop.is_set():
            pager.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pager.arrived.wait(), deadline - time.monotonic())
            found = pager.page_for(issue_id, after)
        return found

    async def acknowledge_from_the_page(self, issue_id: int, stop: asyncio.Event) -> None:
        """Wait (bounded) for the policy's first page (the on-call person of the demo
        schedule), let it ring unanswered until the policy escalates once (the lead), then
        press the acknowledge link of that page the way a person would: open the
        confirmation page, then press its button."""
        first = await self._next_page(issue_id, 0, 30, stop)
        if first is None:
            self.tell(f"the pager got no page for issue #{issue_id}; see its notification log")
            return
        index, page = first
        self.tell(
            f"the on-call pager rings (schedule payments-primary: dana): {page.get('summary')}"
            " -- nobody answers yet"
        )
        second = await self._next_page(issue_id, index + 1, 90, stop)
        if second is not None:
            page = second[1]
            self.tell(
                "no acknowledgement within the step's wait: the launch-p1 policy escalates"
                " to the lead (lee)"
            )
        path = urlsplit(str(page.get("acknowledge_url", ""))).path
        opened = await self.console.request("GET", path)
        pressed = await self.console.request("POST", path)
        self.tell(
            f"the lead acknowledges #{issue_id} from the page's link"
            f" -> {opened.status}/{pressed.status} (escalation stops; see the notification log)"
        )

    async def _find_issue(self) -> int | None:
        r = await self._api("GET", "/api/v1/signals?source=gateway&limit=20", "support")
        if r.status != 200:
            return None
        for item in r.json().get("items", []):
            if item.get("route") == "payment-status" and item.get("issue_id"):
                return int(item["issue_id"])
        return None

    async def _background(self, stop: asyncio.Event) -> None:
        """After the launch incident: steady traffic and, now and then, a minor blip."""
        next_blip = time.monotonic() - self.started + self.rng.uniform(360, 600)
        while await self._until(next_blip, stop):
            catalog = self.shop.services["catalog"]
            catalog.faults = Faults(delay_ms=450, paths=("/catalog/search",))
            self.tell("catalog search slows down for a minute (a minor issue)")
            if not await self._until(next_blip + 60, stop):
                return
            catalog.faults = Faults()
            next_blip += self.rng.uniform(480, 900)

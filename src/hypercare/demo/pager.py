"""The demo's pager: a loopback webhook receiver standing in for the on-call's phone.

The demo configures it as the `oncall-pager` webhook channel; every page it receives is
kept (and printed by the scenario), so the notification log and the sink agree.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from hypercare.demo.http import Request, Response, json_response, serve


@dataclass
class Pager:
    pages: list[dict[str, Any]] = field(default_factory=list)
    # what the demo's status page subscriber (a webhook to /status-hook) was told
    status_updates: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    async def handle(self, req: Request) -> Response:
        if req.method != "POST" or req.path not in ("/page", "/status-hook"):
            return json_response(404, {"error": "POST /page or /status-hook"})
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            return json_response(400, {"error": "JSON body expected"})
        if req.path == "/status-hook":
            if isinstance(body, dict) and len(self.status_updates) < 1000:
                self.status_updates.append(body)
            return json_response(202, {"status": "received"})
        if isinstance(body, dict) and len(self.pages) < 1000:
            self.pages.append(body)
            self.arrived.set()
        return json_response(202, {"status": "paged"})

    async def start(self, host: str = "127.0.0.1") -> None:
        self._server = await serve(self.handle, host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/page"

    @property
    def status_hook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/status-hook"

    def page_for(self, issue_id: int, after: int = 0) -> tuple[int, dict[str, Any]] | None:
        """The first page about `issue_id` received after the first `after` (its index and
        body)."""
        for i, page in enumerate(self.pages[after:], start=after):
            if page.get("issue", {}).get("id") == issue_id:
                return i, page
        return None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

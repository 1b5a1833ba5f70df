"""A loopback webhook receiver (a real HTTP server on a port the OS picks), and the response
loop started with an in-memory notifier."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hypercare.api.state import AppState
from hypercare.response import jobs
from hypercare.response.channels import MemoryNotifier, Notifiers


@dataclass
class Receiver:
    url: str = ""
    status: int = 204  # what it answers; tests change it
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # answered first, one per request


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(min(int(self.headers.get("content-length", "0")), 1 << 20))
            rec.received.append((dict(self.headers), json.loads(body)))
            self.send_response(rec.answers.pop(0) if rec.answers else rec.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def memory(state: AppState) -> MemoryNotifier:
    """The response loop started, its webhook channel answered by an in-memory notifier."""
    notifier = MemoryNotifier()
    jobs.runtime(state).notifiers = Notifiers({"webhook": notifier})
    await jobs.start(state)
    return notifier

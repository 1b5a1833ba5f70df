"""Receivers on loopback for messages outside the team: the response tests' webhook
receiver, and a real SMTP server (aiosmtpd) on a port the OS picks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiosmtpd.smtp import SMTP

from tests.comms.test_service import Inbox
from tests.response.conftest import receiver

__all__ = ["receiver"]


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, int]]:
    box = Inbox()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(box), "127.0.0.1", 0)
    try:
        yield box, server.sockets[0].getsockname()[1]
    finally:
        server.close()

"""The shared test helpers: polling with a deadline."""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.support import wait_until, wait_until_async


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = itertools.count(1)
    assert wait_until(lambda: max(0, next(calls) - 2), 5, "the third call", interval=0) == 1


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="waiting for the impossible"):
        wait_until(lambda: False, 0.05, "the impossible", interval=0.01)


def test_wait_until_treats_connection_errors_as_not_yet_and_raises_others() -> None:
    calls = itertools.count(1)

    def probe() -> bool:
        if next(calls) < 3:
            raise httpx.ConnectError("not listening yet")
        return True

    assert wait_until(probe, 5, "a server", interval=0) is True
    with pytest.raises(KeyError):
        wait_until(lambda: {}["missing"], 5, "a bug")


async def test_wait_until_async_awaits_coroutine_predicates() -> None:
    calls = itertools.count(1)

    async def probe() -> int:
        return max(0, next(calls) - 1)

    assert await wait_until_async(probe, 5, "the second call", interval=0) == 1
    with pytest.raises(AssertionError, match="waiting for nothing"):
        await wait_until_async(lambda: 0, 0.05, "nothing", interval=0.01)

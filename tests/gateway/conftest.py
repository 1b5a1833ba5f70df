from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.gateway.helpers import GatewayUnderTest, Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    u = Upstream("a")
    yield u
    u.stop()


@pytest.fixture
def upstream_b() -> Iterator[Upstream]:
    u = Upstream("b")
    yield u
    u.stop()


@pytest.fixture
def make_gateway() -> Iterator[Callable[[str], GatewayUnderTest]]:
    made: list[GatewayUnderTest] = []

    def make(yaml_text: str) -> GatewayUnderTest:
        g = GatewayUnderTest(yaml_text)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()

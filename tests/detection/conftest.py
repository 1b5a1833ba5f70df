"""Detection API tests run with the demo shop's routes in the gateway configuration."""

from __future__ import annotations

import pytest

from hypercare.config import HypercareConfig
from hypercare.demo.config import demo_config


@pytest.fixture
def config() -> HypercareConfig:
    return demo_config({"catalog": 9101, "orders": 9102, "payments": 9103})

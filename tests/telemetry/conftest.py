"""Telemetry tests run the console with body capture on for errors."""

from __future__ import annotations

import pytest

from hypercare.config import HypercareConfig, parse_config


@pytest.fixture
def config() -> HypercareConfig:
    return parse_config("telemetry:\n  capture:\n    default: errors\n")

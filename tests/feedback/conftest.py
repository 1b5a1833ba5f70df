"""Feedback tests run with integrations and a widget key declared in the config."""

from __future__ import annotations

import pytest

from hypercare.config import HypercareConfig
from tests.feedback.helpers import intake_config


@pytest.fixture
def config() -> HypercareConfig:
    return intake_config()

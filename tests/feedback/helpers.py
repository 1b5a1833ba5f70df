"""Shared helpers for the feedback tests: fixture payloads and an intake-ready config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypercare.config import HypercareConfig
from hypercare.feedback.config import FeedbackConfig, IntegrationSettings, WidgetKey

FIXTURES = Path(__file__).parent / "fixtures"
AM_TOKEN = "am-token-0123456789abcdef"
PD_TOKEN = "pd-routing-key-0123456789abcdef"
SENTRY_TOKEN = "sentry-token-0123456789abcdef"
SENTRY_SECRET = "sentry-client-secret"
WIDGET_KEY = "wk_testkey123"
ALLOWED_ORIGIN = "http://app.localhost:8080"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def fixture_names(prefix: str) -> list[str]:
    return sorted(p.name for p in FIXTURES.glob(f"{prefix}*.json"))


def intake_config(**feedback: Any) -> HypercareConfig:
    fb = FeedbackConfig(
        integrations=[
            IntegrationSettings(id="am", type="alertmanager", name="prod AM", token=AM_TOKEN),
            IntegrationSettings(id="pd", type="pagerduty", name="pd compat", token=PD_TOKEN),
            IntegrationSettings(
                id="sentry", type="sentry", name="sentry", token=SENTRY_TOKEN, secret=SENTRY_SECRET
            ),
        ],
        widget_keys=[WidgetKey(key=WIDGET_KEY, name="app", origins=[ALLOWED_ORIGIN])],
        **feedback,
    )
    return HypercareConfig(feedback=fb)

"""The integration registry: one module per integration, everything else derived from it."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import get_args

import pytest

import hypercare.feedback.adapters as adapters
from hypercare.feedback.adapters import ADAPTERS, INTEGRATION_TYPES, INTEGRATIONS
from hypercare.feedback.adapters.base import Integration
from hypercare.feedback.config import IntegrationType
from hypercare.feedback.integrations import intake_path

FIXTURES = Path(__file__).parent / "fixtures"


def test_every_adapter_module_defines_an_integration_and_is_registered() -> None:
    found = {}
    for info in pkgutil.iter_modules(adapters.__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"hypercare.feedback.adapters.{info.name}")
        integration = getattr(module, "INTEGRATION", None)
        assert isinstance(integration, Integration), f"{info.name} has no INTEGRATION"
        found[integration.type] = integration
    assert found == INTEGRATIONS


def test_the_config_literal_matches_the_registry() -> None:
    # pydantic and mypy need the literal; it must name exactly the registered types
    assert get_args(IntegrationType) == INTEGRATION_TYPES


def test_the_adapter_table_is_derived_from_the_registry() -> None:
    assert {kind: i.parse for kind, i in INTEGRATIONS.items()} == ADAPTERS


@pytest.mark.parametrize("kind", INTEGRATION_TYPES)
def test_each_integration_states_its_dedup_rule(kind: str) -> None:
    assert INTEGRATIONS[kind].dedup.strip()


@pytest.mark.parametrize(
    ("kind", "tail"), [("pagerduty", "v2/enqueue"), ("alertmanager", "webhook")]
)
def test_intake_urls_follow_the_integration(kind: str, tail: str) -> None:
    assert intake_path("x", kind) == f"/api/v1/integrations/x/{tail}"


@pytest.mark.parametrize("kind", [k for k, i in INTEGRATIONS.items() if not i.needs_mapping])
def test_each_integration_read_without_a_mapping_has_real_sample_payloads(kind: str) -> None:
    # the adapters are tested against these (test_adapters.py); a new integration brings its own
    assert sorted(FIXTURES.glob(f"{kind}_*.json")), f"no real {kind} payload in {FIXTURES}"

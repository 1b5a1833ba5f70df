"""Test events: every integration type's sample is read by its real adapter, and marked
drafts never open or join an issue."""

from __future__ import annotations

import json

import pytest

from hypercare.feedback.adapters import ADAPTERS, INTEGRATION_TYPES, INTEGRATIONS
from hypercare.feedback.config import FieldMapping, IntegrationOptions
from hypercare.feedback.drafts import Rejected, SignalDraft
from hypercare.feedback.samples import KINDS, is_test, mark, sample


def test_every_integration_type_has_a_sample() -> None:
    assert KINDS == INTEGRATION_TYPES


@pytest.mark.parametrize("kind", INTEGRATION_TYPES)
def test_each_sample_is_read_by_its_adapter(kind: str) -> None:
    options = IntegrationOptions(
        mapping=FieldMapping(summary="title", status="state", dedup_key="ref")
        if INTEGRATIONS[kind].needs_mapping
        else None
    )
    body, headers = sample(kind, options)
    drafts = ADAPTERS[kind](body, headers, options)
    assert len(drafts) == 1
    assert "Test" in drafts[0].summary
    assert is_test(headers)


def test_a_sentry_sample_is_signed_with_the_configured_secret() -> None:
    options = IntegrationOptions(secret="client-secret")
    body, headers = sample("sentry", options)
    assert ADAPTERS["sentry"](body, headers, options)
    with pytest.raises(Rejected) as err:
        ADAPTERS["sentry"](body, headers, IntegrationOptions(secret="another"))
    assert err.value.status == 401


def test_a_webhook_sample_follows_nested_paths_and_items() -> None:
    mapping = FieldMapping(
        items="data.events",
        summary="alert.title",
        severity="alert.labels.0",
        dedup_key="id",
        status="state",
    )
    body, headers = sample("webhook", IntegrationOptions(mapping=mapping))
    payload = json.loads(body)
    event = payload["data"]["events"][0]
    assert event["alert"]["labels"] == ["info"] and event["state"] == "firing"
    (draft,) = ADAPTERS["webhook"](body, headers, IntegrationOptions(mapping=mapping))
    assert draft.severity == "info" and draft.dedup_key.startswith("webhook:hypercare-test-")


def test_no_sample_without_a_mapping_or_for_signed_sns() -> None:
    with pytest.raises(Rejected, match="no field mapping"):
        sample("webhook", IntegrationOptions())
    with pytest.raises(Rejected, match="only AWS can make"):
        sample("cloudwatch", IntegrationOptions.model_construct(sns_certificate="PEM"))
    with pytest.raises(Rejected, match="no sample event"):
        sample("opsgenie", IntegrationOptions())


def test_marked_drafts_are_labelled_and_open_no_issue() -> None:
    draft = SignalDraft(
        kind="system", source="datadog", summary="s", dedup_key="datadog:1", raw={}, issue_id=4
    )
    (marked,) = mark([draft])
    assert marked.labels == {"test": "true"}
    assert marked.issue_id is None and marked.create_issue is False
    assert marked.dedup_key == "test:datadog:1"


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("1", True), (" TRUE ", True), ("no", False)]
)
def test_the_test_header(value: str, expected: bool) -> None:
    assert is_test({"x-hypercare-test": value}) is expected
    assert is_test({}) is False

"""Test events: a sample payload per integration type, and how a test delivery is marked.

A test event goes through the real adapter and the intake path, so it proves that the
adapter reads the payload (the generic webhook's mapping included) and that the signal is
stored. It is kept as a signal labelled ``test: "true"``, attached to no issue and creating
none: it never reaches deduplication, correlation, SLA clocks or MTTx.

The console sends one with its "send test event" button (`sample`). An external sender
marks a real delivery as a test with the ``X-Hypercare-Test: true`` header (`is_test`),
which also proves the URL and the token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from hypercare.feedback.adapters import INTEGRATION_TYPES, INTEGRATIONS
from hypercare.feedback.config import IntegrationOptions
from hypercare.feedback.drafts import Rejected, SignalDraft

TEST_HEADER = "x-hypercare-test"
TEST_LABEL = "test"
_TRUE = ("1", "true", "yes")


def is_test(headers: Mapping[str, str]) -> bool:
    """Whether a delivery asks to be treated as a test (``X-Hypercare-Test: true``)."""
    return headers.get(TEST_HEADER, "").strip().lower() in _TRUE


def mark(drafts: Sequence[SignalDraft]) -> list[SignalDraft]:
    """The drafts as test signals: labelled, attached to no issue, opening none, and with
    their own dedup key so they never join the group of a real alert."""
    return [
        replace(
            d,
            labels={**d.labels, TEST_LABEL: "true"},
            issue_id=None,
            create_issue=False,
            dedup_key=f"test:{d.dedup_key}"[:400],
        )
        for d in drafts
    ]


def sample(kind: str, options: IntegrationOptions) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a test event for an integration of type `kind`, made by the
    integration's own module (`hypercare.feedback.adapters`).

    A Sentry integration with a client secret gets a valid ``Sentry-Hook-Signature``; a
    CloudWatch integration that verifies SNS signatures cannot be tested from the console
    (only AWS can sign), which is said in the `Rejected` reason."""
    integration = INTEGRATIONS.get(kind)
    if integration is None:
        raise Rejected(f"there is no sample event for {kind} integrations", status=409)
    body, source_headers = integration.sample(options)
    return body, {TEST_HEADER: "true", "content-type": "application/json", **source_headers}


KINDS = INTEGRATION_TYPES

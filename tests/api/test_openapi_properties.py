"""Property-based tests over the OpenAPI document, with schemathesis, on both stores.

Schemathesis generates requests for every operation from the document: valid ones
(positive) and ones that break the schema (negative). Each is sent in-process to the app
with an admin token; the answer must not be a 5xx, and its status, content type and body
must be those the document declares. Generation is derandomized (the same cases every run)
and bounded (`EXAMPLES` per operation and mode), and done once for both stores: the cases
depend on the document only.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hypercare.api.app import build_state, create_app
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig
from hypercare.store.db import create_engine
from tests.conftest import auth
from tests.feedback.helpers import intake_config

EXAMPLES = 5
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# a case that revokes a token may hit the admin token the other cases use: those go last
LAST = "DELETE /api/v1/tokens/{token_id}"
SENT = ("method", "url", "headers", "params", "json", "content")


@functools.cache
def _cases() -> list[Case]:
    """Every generated case, in a fixed order. The document comes from an app over an
    engine that is never connected to (building it touches no store)."""
    unused = create_engine("sqlite+aiosqlite://")
    app = create_app(build_state(intake_config(), unused), background=False)
    schema = schemathesis.openapi.from_dict(app.openapi())
    cases: list[Case] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def collect(case: Case) -> None:
                cases.append(case)

            # an operation without inputs has nothing to break (negative mode)
            with contextlib.suppress(Unsatisfiable):
                collect()
    return sorted(cases, key=lambda c: c.operation.label == LAST)


def _request(case: Case, token: str) -> dict[str, Any]:
    sent = case.as_transport_kwargs(base_url="http://console")
    sent["headers"] = {**sent.get("headers", {}), **auth(token)}
    if isinstance(sent.get("data"), bytes | str):
        sent["content"] = sent.pop("data")
    return {k: v for k, v in sent.items() if k in SENT}


@pytest.fixture
def config() -> HypercareConfig:
    return intake_config()  # integrations and a widget key, so intake answers for real


async def test_the_api_keeps_its_contract(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    cases = _cases()
    assert len(cases) > 300  # every operation, in both modes
    failures: dict[tuple[str, int], str] = {}
    for case in cases:
        response = await client.request(**_request(case, tokens[Role.admin]))
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as exc:
            failures.setdefault((case.operation.label, response.status_code), str(exc)[:1500])
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())

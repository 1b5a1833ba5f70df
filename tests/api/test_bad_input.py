"""Input no endpoint can take is a 422 with the usual error body, on both stores.

The endpoints are found by walking the app's routes, so a new endpoint is covered as soon as
it exists: every integer path or query parameter gets out-of-range values, every time
parameter naive, far-future and unparsable ones, every endpoint a NUL character in its query,
and every endpoint with a body a NUL character and a 5,000-deep JSON document.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import AwareDatetime

from hypercare.api.limits import MAX_JSON_DEPTH, json_depth
from hypercare.api.state import AppState
from hypercare.auth.rules import Role
from hypercare.config import HypercareConfig
from hypercare.telemetry import nodes
from hypercare.telemetry.shipper import INGEST_PATH
from tests.conftest import auth
from tests.feedback.helpers import WIDGET_KEY, intake_config

API = "/api/v1"
BAD_INTS = ("9223372036854775808", "2147483648", "1e30", "-1", "0", "1.5", "x")
BAD_OFFSETS = ("9223372036854775808", "2147483648", "1e30", "-1")
BAD_TIMES = ("5821-01-01T00:00:00Z", "2026-11-27T10:00:00", "1e30", "soon")
DEEP = ("[" * 5000 + "]" * 5000).encode()
DEEP_OBJECT = ('{"a":' * 5000 + "1" + "}" * 5000).encode()


@pytest.fixture
def config() -> HypercareConfig:
    return intake_config()


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {name} placeholders
    path_params: dict[str, type]
    query_params: dict[str, type]
    has_body: bool
    typed_body: bool  # a pydantic schema reads the body (else the endpoint reads raw bytes)

    def url(self, **values: str) -> str:
        filled = {
            name: values.get(name, "1" if kind is int else "x")
            for name, kind in self.path_params.items()
        }
        return API + self.path.removeprefix(API).format(**filled)


def _kind(annotation: Any) -> type:
    """int, datetime or str: what a parameter's annotation comes down to."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    if annotation is AwareDatetime:
        return datetime
    if annotation in (int, datetime):
        return typing.cast(type, annotation)
    for arg in typing.get_args(annotation):  # X | None
        kind = _kind(arg)
        if kind is not str:
            return kind
    return str


def endpoints(app: FastAPI) -> Iterator[Endpoint]:
    for ctx in iter_route_contexts(app.routes):
        dependant = getattr(ctx, "dependant", None)
        path = ctx.path_format or ""
        if dependant is None or not path.startswith(API):
            continue
        for method in sorted(ctx.methods or ()):
            if method in ("HEAD", "OPTIONS"):
                continue
            yield Endpoint(
                method=method,
                path=path,
                path_params={
                    p.alias: _kind(p.field_info.annotation) for p in dependant.path_params
                },
                query_params={
                    p.alias: _kind(p.field_info.annotation) for p in _all_queries(dependant)
                },
                has_body=method in ("POST", "PUT", "PATCH"),
                typed_body=bool(dependant.body_params),
            )


def _all_queries(dependant: Any) -> list[Any]:
    out = list(dependant.query_params)
    for sub in dependant.dependencies:
        out += _all_queries(sub)
    return out


def _app(client: httpx.AsyncClient) -> FastAPI:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    assert isinstance(app, FastAPI)
    return app


async def _send(
    client: httpx.AsyncClient, token: str, method: str, url: str, body: bytes | None = None
) -> httpx.Response:
    headers = auth(token) | {"Content-Type": "application/json"}
    return await client.request(
        method, url, content=body if body is not None else b"{}", headers=headers
    )


def _problem(r: httpx.Response, what: str) -> str | None:
    """None when `r` is the 422 error body; else what is wrong with it."""
    if r.status_code != 422:
        return f"{what}: {r.status_code} {r.text[:200]}"
    try:
        error = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{what}: 422 without the error body: {r.text[:200]}"
    if error.get("code") != "invalid_input" or not error.get("message"):
        return f"{what}: unexpected error body {error}"
    return None


def test_every_endpoint_is_found(client: httpx.AsyncClient) -> None:
    found = {(e.method, e.path) for e in endpoints(_app(client))}
    # a sample across the routers, to prove the walk reaches included routers
    assert {
        ("GET", "/api/v1/issues/{issue_id}"),
        ("POST", "/api/v1/issues/{issue_id}/merge"),
        ("DELETE", "/api/v1/tokens/{token_id}"),
        ("POST", "/api/v1/signals/{signal_id}/split"),
        ("POST", "/api/v1/intake/rejected/{delivery_id}/replay"),
        ("GET", "/api/v1/calls/{request_id}"),
        ("POST", "/api/v1/feedback"),
    } <= found
    assert len(found) > 40


async def test_out_of_range_integers_in_paths_and_queries(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    admin = tokens[Role.admin]
    problems, tried = [], 0
    for e in endpoints(_app(client)):
        for name, kind in e.path_params.items():
            if kind is not int:
                continue
            for bad in BAD_INTS:
                tried += 1
                r = await _send(client, admin, e.method, e.url(**{name: bad}))
                problems.append(_problem(r, f"{e.method} {e.path} {name}={bad}"))
        for name, kind in e.query_params.items():
            if kind is not int:
                continue
            for bad in BAD_OFFSETS:
                tried += 1
                r = await _send(client, admin, e.method, e.url() + f"?{name}={bad}")
                problems.append(_problem(r, f"{e.method} {e.path}?{name}={bad}"))
    assert tried > 80
    assert [p for p in problems if p] == []


async def test_bad_times_in_queries(client: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
    problems, tried = [], 0
    for e in endpoints(_app(client)):
        for name, kind in e.query_params.items():
            if kind is not datetime:
                continue
            for bad in BAD_TIMES:
                tried += 1
                url = e.url() + "?" + httpx.QueryParams({name: bad, "route": "/x"}).__str__()
                r = await _send(client, tokens[Role.admin], e.method, url)
                problems.append(_problem(r, f"{e.method} {e.path}?{name}={bad}"))
    assert tried >= 40  # from/to on signals, scores, analytics, calls; at= on a call
    assert [p for p in problems if p] == []


async def test_nul_in_any_query_or_body(client: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
    """Refused in queries and typed bodies; intake endpoints, which read raw payloads from
    tools that cannot be fixed, strip it (tests/feedback) and never fail on it."""
    problems, typed = [], 0
    nul_body = json.dumps({"title": "a\x00b", "text": "a\x00b", "type": "bug"}).encode()
    for e in endpoints(_app(client)):
        r = await _send(client, tokens[Role.admin], e.method, e.url() + "?q=a%00b")
        problems.append(_problem(r, f"{e.method} {e.path}?q=NUL"))
        if e.has_body:
            r = await _send(client, tokens[Role.admin], e.method, e.url(), nul_body)
            if e.typed_body:
                typed += 1
                problems.append(_problem(r, f"{e.method} {e.path} NUL body"))
            elif r.status_code >= 500:
                problems.append(f"{e.method} {e.path} NUL body: {r.status_code}")
    assert typed >= 12
    assert [p for p in problems if p] == []


async def test_nul_error_names_the_field(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    body = {"title": "t", "labels": ["ok", "b\x00d"]}
    r = await client.post(f"{API}/issues", json=body, headers=auth(tokens[Role.admin]))
    assert _problem(r, "NUL label") is None
    assert "labels.1 holds a NUL character" in r.json()["error"]["message"]


async def test_deep_json_everywhere_including_the_widget(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    problems = []
    for e in endpoints(_app(client)):
        if not e.has_body or e.path == INGEST_PATH:  # node token only: see below
            continue
        for body in (DEEP, DEEP_OBJECT):
            r = await _send(client, tokens[Role.admin], e.method, e.url(), body)
            problems.append(_problem(r, f"{e.method} {e.path} deep JSON"))
    r = await client.post(
        f"{API}/feedback?key={WIDGET_KEY}",
        content=DEEP,
        headers={"Origin": "http://app.localhost:8080", "Content-Type": "text/plain"},
    )
    problems.append(_problem(r, "widget deep JSON"))
    assert [p for p in problems if p] == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/issues", {"title": "t", "impact_started_at": "2026-11-27T10:00:00"}),
        ("/issues", {"title": "t", "impact_started_at": "5821-01-01T00:00:00Z"}),
        ("/deployments", {"service": "s", "version": "1", "deployed_at": "2026-11-27T10:00:00"}),
        ("/deployments", {"service": "s", "version": "1", "deployed_at": "9999-12-31T00:00:00Z"}),
        ("/deployments", {"service": "s", "version": "1", "issue_ids": [2**63]}),
        ("/team/notes", {"type": "observation", "text": "t", "issue_id": 2**63}),
        ("/issues/1/merge", {"into": 2**63}),
        ("/issues/1/merge", {"into": 2**31}),
    ],
)
async def test_bad_values_in_bodies(
    client: httpx.AsyncClient, tokens: dict[Role, str], path: str, body: dict[str, Any]
) -> None:
    r = await client.post(API + path, json=body, headers=auth(tokens[Role.admin]))
    assert _problem(r, path) is None
    (field,) = [k for k in body if k not in ("title", "service", "version", "type", "text")]
    assert field in r.json()["error"]["message"]


async def test_a_naive_time_in_an_update_is_422(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    r = await client.post(f"{API}/issues", json={"title": "t"}, headers=auth(tokens[Role.admin]))
    r = await client.patch(
        f"{API}/issues/{r.json()['id']}",
        json={"impact_started_at": "2026-11-27T10:00:00"},
        headers=auth(tokens[Role.admin]),
    )
    assert _problem(r, "naive impact_started_at") is None


async def test_good_input_still_passes(client: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
    """The guard leaves ordinary input alone: brackets and backslashes in text, a deep but
    allowed document, the largest id, an escaped backslash followed by u0000."""
    admin = auth(tokens[Role.admin])
    text = "a [[[ {{{ \\u0000 ]]] b" + "[" * 200
    r = await client.post(f"{API}/issues", json={"title": "t", "description": text}, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["description"] == text
    r = await client.get(f"{API}/issues/{2**31 - 1}", headers=admin)
    assert r.status_code == 404
    r = await client.get(f"{API}/issues?offset={2**31 - 1}", headers=admin)
    assert r.status_code == 200 and r.json()["items"] == []
    labels: Any = "x"
    for _ in range(MAX_JSON_DEPTH - 2):
        labels = [labels]
    r = await client.post(f"{API}/issues", json={"title": "t", "labels": labels}, headers=admin)
    assert r.status_code == 422  # deep, but it reaches validation: labels must be strings
    assert "labels" in r.json()["error"]["message"]


async def test_deep_telemetry_batches_are_refused_by_the_decoder(
    client: httpx.AsyncClient, state: AppState
) -> None:
    """Telemetry batches skip the depth count (hot path); their decoder refuses nesting."""
    async with state.sessions() as s, s.begin():
        node = (await nodes.create_node_token(session=s, name="edge-1")).token
    for body in (DEEP, DEEP_OBJECT, b'{"v": 1, "batch": "abcdefgh1234", "records": ' + DEEP + b"}"):
        r = await client.post(INGEST_PATH, content=body, headers=auth(node))
        assert _problem(r, "deep telemetry batch") is None


def test_json_depth() -> None:
    assert json_depth(b"1") == 0
    assert json_depth(b'{"a": [1, {"b": "]]"}]}') == 3
    assert json_depth(b'["\\"[[[[", []]') == 2
    assert json_depth(DEEP) == 5000


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/feedback/scores?step=99999999999d", None),
        ("GET", "/analytics/timeseries?route=/x&step=99999999999d", None),
        ("GET", "/analytics/trends?route=/x&window=99999999999d", None),
        (
            "POST",
            "/detection/rules",
            b'{"name": "r", "metric": "error_rate", "threshold": 1, "for": "99999999999d"}',
        ),
        ("POST", "/detection/rules", b'{"name": "r", "metric": "error_rate", "threshold": NaN}'),
        ("POST", "/detection/rules", b'{"name": "r", "metric": "error_rate", "threshold": 1e400}'),
        (
            "POST",
            "/detection/rules",
            b'{"name": "r", "metric": "error_rate", "threshold": 1, "floor": -Infinity}',
        ),
    ],
)
async def test_huge_durations_and_non_finite_numbers(
    client: httpx.AsyncClient, tokens: dict[Role, str], method: str, url: str, body: bytes | None
) -> None:
    r = await _send(client, tokens[Role.admin], method, API + url, body)
    assert _problem(r, url) is None

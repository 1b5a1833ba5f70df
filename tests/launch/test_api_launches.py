"""Launches made through the API: create, validate, edit, delete, and the same evaluation as
a launch of the config file (the API, the CLI against the same store), on both stores."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from hypercare.api.app import build_state, create_app
from hypercare.api.state import AppState
from hypercare.auth import service as auth_service
from hypercare.auth.rules import Role
from hypercare.config import parse_config
from hypercare.launch.models import LaunchEvaluation, LaunchRecord
from hypercare.store.base import utcnow
from hypercare.store.db import create_engine
from hypercare.store.migrate import migrate
from tests.conftest import PG_HOST, PG_PORT, PG_URL, auth, require_service
from tests.launch.conftest import CONFIG


def spec(name: str = "mobile-v3", **over: Any) -> dict[str, Any]:
    """A launch that started an hour ago, as a client sends it."""
    now = utcnow().replace(microsecond=0)
    body: dict[str, Any] = {
        "name": name,
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(days=14)).isoformat(),
        "time_zone": "Europe/Berlin",
        "routes": ["catalog"],
        "components": ["payments"],
        "objectives": ["catalog answers within 300 ms"],
        "slos": [{"name": "avail", "route": "catalog", "target": 99.5}],
        "exit_criteria": [{"no_open": ["P1"]}, {"slo_met": {"for": "24h"}}],
    }
    body.update(over)
    return body


async def test_create_list_edit_and_delete(
    client: httpx.AsyncClient, tokens: dict[Role, str], state: AppState
) -> None:
    viewer, responder = auth(tokens[Role.viewer]), auth(tokens[Role.responder])
    r = await client.post("/api/v1/launches", json=spec(), headers=viewer)
    assert r.status_code == 403
    r = await client.post("/api/v1/launches", json=spec(), headers=responder)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["source"] == "api" and made["state"] == "active"
    assert made["time_zone"] == "Europe/Berlin" and made["routes"] == ["catalog"]
    assert made["exit_criteria"][1] == {"slo_met": {"for": "P1D", "slos": []}}

    r = await client.get("/api/v1/launches", headers=viewer)
    assert [(x["name"], x["source"]) for x in r.json()] == [
        ("checkout-v2", "config"),
        ("mobile-v3", "api"),
    ]
    assert (await client.get("/api/v1/launches/mobile-v3", headers=viewer)).json() == made

    # taken names: by the API, by the file
    r = await client.post("/api/v1/launches", json=spec(), headers=responder)
    assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]
    r = await client.post("/api/v1/launches", json=spec("checkout-v2"), headers=responder)
    assert r.status_code == 409
    assert "declared in the config file" in r.json()["error"]["message"]

    # edits: only API-made launches; validated as on creation; null restores the default
    r = await client.patch(
        "/api/v1/launches/checkout-v2", json={"objectives": []}, headers=responder
    )
    assert r.status_code == 409
    assert "declared in the config file; edit it there" in r.json()["error"]["message"]
    new_end = (utcnow() + timedelta(days=21)).replace(microsecond=0)
    r = await client.patch(
        "/api/v1/launches/mobile-v3",
        json={"end": new_end.isoformat(), "time_zone": None, "kpis": [{"name": "orders/day"}]},
        headers=responder,
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["planned_end"] == new_end.isoformat().replace("+00:00", "Z")
    assert edited["time_zone"] == "UTC" and edited["kpis"][0]["name"] == "orders/day"
    r = await client.patch("/api/v1/launches/mobile-v3", json={"name": "x"}, headers=responder)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.name"
    r = await client.patch(
        "/api/v1/launches/mobile-v3",
        json={"slos": [{"name": "avail", "route": "catalog", "target": 100}]},
        headers=responder,
    )
    assert r.status_code == 422
    (detail,) = r.json()["error"]["details"]
    assert detail["field"] == "body.slos.0.target" and "outside (0, 100)" in detail["message"]
    r = await client.patch("/api/v1/launches/mobile-v3", json={"x": 1}, headers=viewer)
    assert r.status_code == 403
    r = await client.patch("/api/v1/launches/nope", json={}, headers=responder)
    assert r.status_code == 404
    r = await client.get("/api/v1/launches/mobile-v3", headers=viewer)
    assert r.json() == edited  # the refused edits changed nothing

    # state, SLOs, exit check and history work on it as on a declared launch
    r = await client.post(
        "/api/v1/launches/mobile-v3/state",
        json={"to": "exit_review", "note": "looks calm"},
        headers=responder,
    )
    assert r.status_code == 200 and r.json()["state"] == "exit_review"
    assert r.json()["source"] == "api"
    r = await client.get("/api/v1/launches/mobile-v3/slos", headers=viewer)
    assert [s["name"] for s in r.json()] == ["avail"]
    r = await client.get("/api/v1/launches/mobile-v3/exit-check", headers=viewer)
    assert r.status_code == 200 and r.json()["launch"] == "mobile-v3"
    r = await client.get("/api/v1/launches/mobile-v3/evaluations", headers=viewer)
    assert len(r.json()) == 1
    r = await client.get("/api/v1/launches/mobile-v3/report?format=md", headers=viewer)
    assert r.status_code == 200 and "mobile-v3" in r.text

    # a launch with history is not deleted; neither is one of the file
    r = await client.delete("/api/v1/launches/mobile-v3", headers=responder)
    assert r.status_code == 409
    assert "1 evaluation(s)" in r.json()["error"]["message"]
    assert r.json()["error"]["details"] == {"state": "exit_review", "evaluations": 1}
    r = await client.delete("/api/v1/launches/checkout-v2", headers=responder)
    assert r.status_code == 409 and "config file" in r.json()["error"]["message"]
    assert (await client.delete("/api/v1/launches/nope", headers=responder)).status_code == 404
    assert (await client.delete("/api/v1/launches/mobile-v3", headers=viewer)).status_code == 403

    # an exited launch stays as it was evaluated
    r = await client.post(
        "/api/v1/launches/mobile-v3/state", json={"to": "exited"}, headers=responder
    )
    assert r.status_code == 200
    r = await client.patch("/api/v1/launches/mobile-v3", json={"objectives": []}, headers=responder)
    assert r.status_code == 409 and "is exited" in r.json()["error"]["message"]

    # a name whose state outlived its launch (dropped from the file) is not reused
    async with state.sessions() as s, s.begin():
        s.add(LaunchRecord(name="ghost", state="exited", changed_by="lee", history=[]))
    r = await client.post("/api/v1/launches", json=spec("ghost"), headers=responder)
    assert r.status_code == 409 and "kept from an earlier launch" in r.json()["error"]["message"]

    # a planned launch goes, with its state and evaluations; its name is free again
    later = utcnow() + timedelta(days=7)
    body = spec("search-v2", start=later.isoformat(), end=None)
    assert (await client.post("/api/v1/launches", json=body, headers=responder)).status_code == 201
    r = await client.get("/api/v1/launches/search-v2/exit-check", headers=viewer)
    assert r.json()["state"] == "planned"
    r = await client.post(
        "/api/v1/launches/search-v2/state", json={"to": "active"}, headers=responder
    )
    assert r.status_code == 200
    # active now, with an evaluation: refused
    assert (await client.delete("/api/v1/launches/search-v2", headers=responder)).status_code == 409
    body = spec("search-v3", start=later.isoformat())
    assert (await client.post("/api/v1/launches", json=body, headers=responder)).status_code == 201
    await client.get("/api/v1/launches/search-v3/exit-check", headers=viewer)
    r = await client.delete("/api/v1/launches/search-v3", headers=responder)
    assert r.status_code == 204 and r.content == b""
    assert (await client.get("/api/v1/launches/search-v3", headers=viewer)).status_code == 404
    async with state.sessions() as s:
        left = await s.scalar(
            select(func.count())
            .select_from(LaunchEvaluation)
            .where(LaunchEvaluation.launch == "search-v3")
        )
        assert left == 0
    assert (await client.post("/api/v1/launches", json=body, headers=responder)).status_code == 201


BAD = [
    ({"routes": ["nope"]}, "body.routes.0", "unknown route 'nope' (routes: catalog, payment"),
    ({"components": ["billing"]}, "body.components.0", "unknown component 'billing'"),
    (
        {"slos": [{"name": "a", "route": "catalog", "target": 100}]},
        "body.slos.0.target",
        "SLO target 100.0 is outside (0, 100): give a percentage like 99.9",
    ),
    (
        {"slos": [{"name": "a", "route": "catalog", "target": 99, "window": "90d"}]},
        "body.slos.0",
        "window must be between 1h and 28d",
    ),
    (
        {"exit_criteria": [{"metric": {"route": "catalog", "metric": "p42", "max": 1}}]},
        "body.exit_criteria.0.metric.metric",
        "unknown metric 'p42'; use",
    ),
    (
        {"exit_criteria": [{"no_open": ["P9"]}]},
        "body.exit_criteria.0.no_open.0",
        "unknown priority",
    ),
    (
        {"exit_criteria": [{"slo_met": {"for": "24h"}}], "slos": []},
        "body.exit_criteria.0.slo_met",
        "slo_met needs SLOs",
    ),
    ({"end": "2020-01-01T00:00:00Z"}, "body", "end must be after start"),
    ({"start": "2300-01-01T00:00:00Z", "end": None}, "body", "must lie between 1970-01-01"),
    ({"start": "2026-01-01T00:00:00"}, "body.start", "timezone"),
    ({"time_zone": "Mars/Base"}, "body.time_zone", "unknown time zone 'Mars/Base'"),
    ({"roster": {"deploy": {}}}, "body.roster", "unknown activity 'deploy'"),
    ({"owner": "lee"}, "body.owner", "Extra inputs are not permitted"),
    ({"name": "two words"}, "body.name", "should match pattern"),
    ({"kpis": [{"name": "x", "window": "soon"}]}, "body.kpis.0.window", "invalid duration"),
]


async def test_invalid_launches_are_422_naming_the_field(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    responder = auth(tokens[Role.responder])
    for over, field, message in BAD:
        r = await client.post("/api/v1/launches", json=spec(**over), headers=responder)
        assert r.status_code == 422, (over, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_input"
        assert any(d["field"] == field and message in d["message"] for d in error["details"]), (
            over,
            error,
        )
    body = spec()
    del body["start"]
    r = await client.post("/api/v1/launches", json=body, headers=responder)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.start"
    r = await client.post("/api/v1/launches", content=b"[1, 2]", headers=responder)
    assert r.status_code == 422
    r = await client.get("/api/v1/launches", headers=responder)
    assert [x["name"] for x in r.json()] == ["checkout-v2"]  # nothing was stored


# --- the CLI on the store the API wrote ---------------------------------------------------------


HYPERCARE = [sys.executable, "-m", "hypercare"]


async def _pg_admin(*statements: str) -> None:
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for sql in statements:
                await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL a child process can open too: a SQLite file, or a PostgreSQL login role
    whose own schema is first on its default search_path."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"hc_launch_{uuid.uuid4().hex[:10]}"
    asyncio.run(
        _pg_admin(f"CREATE ROLE {name} LOGIN", f"CREATE SCHEMA {name} AUTHORIZATION {name}")
    )
    try:
        yield f"postgresql://{name}@{PG_HOST}:{PG_PORT}/test"
    finally:
        asyncio.run(
            _pg_admin(f"DROP SCHEMA IF EXISTS {name} CASCADE", f"DROP ROLE IF EXISTS {name}")
        )


@pytest.fixture
async def cli_state(store_url: str) -> AsyncIterator[AppState]:
    from hypercare.store.db import database_url

    engine = create_engine(database_url(".", store_url))
    await migrate(engine)
    try:
        yield build_state(parse_config(CONFIG, "launch.yaml"), engine)
    finally:
        await engine.dispose()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HYPERCARE, *args], capture_output=True, text=True, timeout=120, check=False
    )


async def test_cli_exit_check_and_report_on_an_api_launch(
    cli_state: AppState, store_url: str, tmp_path: Path
) -> None:
    async with cli_state.sessions() as s, s.begin():
        token = (await auth_service.create_token(session=s, name="ops", role=Role.responder)).token
    app = create_app(cli_state, background=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as client:
        h = auth(token)
        r = await client.post("/api/v1/launches", json=spec(), headers=h)
        assert r.status_code == 201, r.text
        r = await client.post(
            "/api/v1/issues",
            json={"title": "catalog 503", "priority": "P1", "route": "catalog"},
            headers=h,
        )
        assert r.status_code == 201, r.text
        issue = r.json()["id"]
    cfg = tmp_path / "hc.yaml"
    cfg.write_text(CONFIG)
    where = ["--config", str(cfg), "--database-url", store_url]

    r = await asyncio.to_thread(cli, "launch", "exit-check", "mobile-v3", *where)
    assert r.returncode == 1, r.stderr
    assert f"[FAIL] no open P1 issue: 1 open: #{issue}" in r.stdout
    r = await asyncio.to_thread(cli, "launch", "exit-check", "mobile-v3", "--json", *where)
    card = json.loads(r.stdout)
    assert card["launch"] == "mobile-v3" and card["state"] == "active" and not card["passed"]
    r = await asyncio.to_thread(cli, "launch", "report", "mobile-v3", "--kind", "final", *where)
    assert r.returncode == 0 and "# Post-hypercare report: mobile-v3" in r.stdout
    assert f"| no open P1 issue | FAIL | 1 open: #{issue} |" in r.stdout
    r = await asyncio.to_thread(cli, "launch", "exit-check", "gone", *where)
    assert r.returncode == 2 and "known launches: checkout-v2, mobile-v3" in r.stderr

    # the CLI kept its evaluation in the same store
    async with cli_state.sessions() as s:
        kept = await s.scalar(
            select(func.count())
            .select_from(LaunchEvaluation)
            .where(LaunchEvaluation.launch == "mobile-v3")
        )
        assert kept == 1
        assert await s.scalar(select(func.count()).select_from(LaunchRecord)) == 0

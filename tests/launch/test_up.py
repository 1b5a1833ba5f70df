"""A launch made through the API of a running `hypercare up` is evaluated by it, without a
restart (its launch loop reads the launches afresh on every pass)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.support import hypercare_up, wait_until

TOKEN = "hc_launch-e2e-admin-0001"


def test_a_launch_made_through_the_api_is_evaluated(tmp_path: Path) -> None:
    env = {"HYPERCARE_ADMIN_TOKEN": TOKEN}
    h = {"Authorization": f"Bearer {TOKEN}"}
    # no launch in the file: the launch loop runs anyway
    with hypercare_up(tmp_path / "data", args=["--workers", "0"], env=env) as up:
        assert httpx.get(f"{up.url}/api/v1/launches", headers=h).json() == []
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        r = httpx.post(
            f"{up.url}/api/v1/launches",
            json={
                "name": "app-v5",
                "start": start.isoformat(),
                "exit_criteria": [{"no_open": ["P1", "P2"]}, {"no_new": {"for": "1h"}}],
            },
            headers=h,
            timeout=30,
        )
        assert r.status_code == 201, r.text
        assert r.json()["source"] == "api" and r.json()["state"] == "active"

        def evaluated() -> list[dict[str, object]]:
            got: list[dict[str, object]] = httpx.get(
                f"{up.url}/api/v1/launches/app-v5/evaluations", headers=h, timeout=10
            ).json()
            return got

        # the loop's next pass (every 30 s) evaluates the new launch; nothing else here
        # asks for an exit check, so the evaluation is the loop's
        (evaluation,) = wait_until(evaluated, 240, "the running server to evaluate app-v5")
        assert evaluation["passed"] is True and evaluation["criteria"] == 2
        launches = httpx.get(f"{up.url}/api/v1/launches", headers=h).json()
        assert [(x["name"], x["source"]) for x in launches] == [("app-v5", "api")]

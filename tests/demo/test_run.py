"""`hypercare up --demo` end to end, as `make run` starts it: the shop behind the gateway,
the payments incident, the shopper's widget report, the page and its acknowledgement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from hypercare.demo.run import FAULT_AT_ENV, fault_at_from_env
from tests.support import hypercare_up, wait_until

ADMIN = "hc_demo-run-admin-000000001"
H = {"Authorization": f"Bearer {ADMIN}"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", 45.0), ("12", 12.0), ("abc", 45.0), ("1", 45.0), ("nan", 45.0), ("99999", 45.0)],
)
def test_the_fault_time_comes_from_the_environment_within_bounds(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: float
) -> None:
    monkeypatch.setenv(FAULT_AT_ENV, raw)
    assert fault_at_from_env() == expected


def test_up_demo_runs_the_incident_on_free_ports(tmp_path: Path) -> None:
    """With the gateway on port 0 (as every test runs it) the widget's allowed origin still
    names the gateway's real port, so the shopper's report is accepted; the P1 pages the
    demo's on-call and is acknowledged through the signed link."""
    with (
        hypercare_up(
            tmp_path / "data",
            args=["--demo", "--workers", "1"],
            env={"HYPERCARE_ADMIN_TOKEN": ADMIN, FAULT_AT_ENV: "8"},
            timeout=120,
        ) as up,
        httpx.Client(base_url=up.url, headers=H, timeout=15) as api,
    ):

        def widget_report() -> str | None:
            line = [x for x in up.output().splitlines() if "in-app widget" in x]
            return line[0] if line else None

        said = wait_until(widget_report, 240, "the demo's widget report")
        assert said.endswith("-> 202"), up.output()

        def acknowledged_p1() -> dict[str, Any] | None:
            r = api.get("/api/v1/issues", params={"priority": "P1", "limit": 20})
            for item in r.json()["items"]:
                issue: dict[str, Any] = api.get(f"/api/v1/issues/{item['id']}").json()
                if issue.get("acknowledged_at"):
                    return issue
            return None

        issue = wait_until(acknowledged_p1, 240, "the demo's P1 acknowledged")
        sent = api.get(f"/api/v1/issues/{issue['id']}/notifications").json()
        # the policy pages the on-call person's contact (through the demo's pager channel)
        pages = [d for d in sent if d["event"] == "page"]
        assert pages and all(d["state"] == "sent" for d in pages), sent
        assert issue["mtta_seconds"] is not None
        subscribers = api.get("/api/v1/subscribers").json()
        assert [s["kind"] for s in subscribers["items"]] == ["webhook"], subscribers

        def subscriber_told() -> list[dict[str, Any]] | None:
            # the subscriber's URL is on this machine: the guard at each send lets it
            # through because the demo's config names it in response.allow_private
            r = api.get("/api/v1/notifications", params={"event": "subscription"})
            items: list[dict[str, Any]] = r.json()["items"]
            return items if any(d["state"] == "sent" for d in items) else None

        told = wait_until(subscriber_told, 120, "the status page's subscriber told")
        assert all(d["state"] != "dead" for d in told), told
        digest = api.get("/api/v1/digest", params={"format": "markdown"})
        assert digest.status_code == 200 and digest.text.startswith("# Hypercare digest")

"""The issue's minimal `response:` file, as written, through a real `hypercare up`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.response.conftest import Receiver
from tests.support import hypercare_up, wait_until

TOKEN = "hc_response-e2e-admin-0001"


def test_the_minimal_file_pages_a_p1_and_the_link_acknowledges(
    tmp_path: Path, receiver: Receiver
) -> None:
    url, received = receiver.url, receiver.received
    config = tmp_path / "hypercare.yaml"
    config.write_text(
        f"""\
response:
  channels:
    - name: ops-hook
      type: webhook
      url: {url}
  rules:
    - match: {{priority: [P1]}}
      notify: [ops-hook]
""",
        encoding="utf-8",
    )
    env = {"HYPERCARE_ADMIN_TOKEN": TOKEN}
    with hypercare_up(tmp_path / "data", config=config, args=["--workers", "0"], env=env) as up:
        h = {"Authorization": f"Bearer {TOKEN}"}
        p3 = httpx.post(
            f"{up.url}/api/v1/issues", json={"title": "Minor", "priority": "P3"}, headers=h
        )
        p1 = httpx.post(
            f"{up.url}/api/v1/issues", json={"title": "Payments down", "priority": "P1"}, headers=h
        )
        assert p1.status_code == 201 and p3.status_code == 201
        issue_id = p1.json()["id"]
        wait_until(lambda: received, 30, "the webhook to receive the P1")
        headers, body = received[0]
        assert body["issue"]["id"] == issue_id
        assert body["issue"]["priority"] == "P1"
        assert body["issue"]["title"] == "Payments down"
        assert body["issue"]["url"] == f"{up.url}/issues/{issue_id}"
        ack = body["acknowledge_url"]
        assert ack.startswith(f"{up.url}/ack/")
        assert headers["X-Hypercare-Signature"].startswith("t=")
        assert headers["Idempotency-Key"]

        def logged() -> list[dict[str, Any]] | None:
            r = httpx.get(f"{up.url}/api/v1/issues/{issue_id}/notifications", headers=h)
            rows: list[dict[str, Any]] = r.json()
            return rows if rows and rows[0]["state"] == "sent" else None

        (row,) = wait_until(logged, 30, "the delivery to be logged as sent")
        assert row["channel"] == "ops-hook" and row["attempts"] == 1
        assert httpx.get(ack).status_code == 200
        assert httpx.post(ack).status_code == 200
        issue = httpx.get(f"{up.url}/api/v1/issues/{issue_id}", headers=h).json()
        assert issue["acknowledged_at"] is not None
    # only the P1 was sent (plus its acknowledgement, which the P1 rule also routes)
    events = [b["event"] for _, b in received]
    assert events[0] == "created" and set(events) <= {"created", "acknowledged"}
    assert all(b["issue"]["id"] == issue_id for _, b in received)

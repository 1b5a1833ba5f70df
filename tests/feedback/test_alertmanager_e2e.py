"""A real Prometheus Alertmanager fires and resolves alerts into a real console."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.feedback.procs import ADMIN_TOKEN, alertmanager, console, require_binary
from tests.support import wait_until

TOKEN = "am-e2e-token-0123456789abcdef"
CONFIG = f"""feedback:
  integrations:
    - id: prom
      type: alertmanager
      name: Prometheus Alertmanager
      token: {TOKEN}
"""


def test_alertmanager_fires_and_resolves_end_to_end(tmp_path: Path) -> None:
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    with console(tmp_path, CONFIG) as base:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with alertmanager(tmp_path, f"{base}/api/v1/integrations/prom/webhook", TOKEN) as am:
            labels = {
                "alertname": "CheckoutErrors",
                "instance": "web-1",
                "severity": "critical",
                "service": "checkout",
            }
            alert: dict[str, Any] = {
                "labels": labels,
                "annotations": {"summary": "5xx above 5% on /checkout"},
                "startsAt": (datetime.now(UTC) - timedelta(seconds=30)).isoformat(),
                "generatorURL": "http://prometheus.invalid/graph",
            }
            r = httpx.post(f"{am}/api/v2/alerts", json=[alert], timeout=5)
            assert r.status_code == 200, r.text

            def signals(status: str) -> list[dict[str, Any]] | None:
                r = httpx.get(
                    f"{base}/api/v1/signals",
                    params={"source": "alertmanager", "status": status},
                    headers=admin,
                    timeout=5,
                )
                return r.json()["items"] or None

            fired = wait_until(lambda: signals("firing"), 30, "the firing alert to arrive")
            assert fired[0]["summary"] == "CheckoutErrors: 5xx above 5% on /checkout"
            assert fired[0]["labels"]["instance"] == "web-1"
            issue_id = fired[0]["issue_id"]
            assert issue_id

            alert["endsAt"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
            r = httpx.post(f"{am}/api/v2/alerts", json=[alert], timeout=5)
            assert r.status_code == 200, r.text
            resolved = wait_until(lambda: signals("resolved"), 30, "the resolved alert to arrive")
            assert resolved[0]["issue_id"] == issue_id
            assert resolved[0]["dedup_key"] == fired[0]["dedup_key"]

        issue = httpx.get(f"{base}/api/v1/issues/{issue_id}", headers=admin, timeout=5).json()
        assert issue["priority"] == "P1" and issue["component"] == "checkout"
        assert issue["signal_groups"][0]["status"] == "resolved"
        assert issue["signal_groups"][0]["count"] == 2
        rejected = httpx.get(f"{base}/api/v1/intake/rejected", headers=admin, timeout=5).json()
        assert rejected["total"] == 0

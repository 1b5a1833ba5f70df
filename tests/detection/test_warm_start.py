"""The console reads the open issues into the correlator's cache when it starts
(`detection.jobs.warm_correlation`), through `hypercare up`: after a restart the first
signal does not wait for that read."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.support import Up, start_up, wait_until

ADMIN = "hc_warm-start-admin-token"
H = {"Authorization": f"Bearer {ADMIN}"}
READ = re.compile(r"correlation: (\d+) open issues? read at start")


def started(data: Path) -> tuple[Up, int]:
    """Start `hypercare up` (no gateway) on `data`; the process and the count it read."""
    up = start_up(data, args=["--workers", "0"], env={"HYPERCARE_ADMIN_TOKEN": ADMIN})
    try:
        found = wait_until(
            lambda: READ.search(up.output()), 30, "the correlator's start-up read in the log"
        )
    except BaseException:
        up.stop()
        raise
    return up, int(found.group(1))


def test_open_issues_are_read_at_start_and_again_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up, count = started(data)
    url = up.url
    try:
        assert count == 0  # a fresh store
        ids = []
        for n in range(3):
            r = httpx.post(
                f"{url}/api/v1/issues",
                headers=H,
                json={"title": f"checkout fails for card {n}", "route": "checkout"},
                timeout=10,
            )
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        r = httpx.post(
            f"{url}/api/v1/issues/{ids[0]}/transitions",
            headers=H,
            json={"to": "closed", "reason": "a duplicate"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
    finally:
        up.stop()

    up, count = started(data)
    url = up.url
    try:
        assert count == 2  # the two still open; the closed one is not the correlator's
        # the intake goes on from the cache it read: a ticket is stored and lands on an issue
        r = httpx.post(
            f"{url}/api/v1/feedback",
            headers=H,
            json={"type": "ticket", "subject": "checkout fails", "description": "card declined"},
            timeout=10,
        )
        assert r.status_code == 202, r.text
        assert len(r.json()["issues"]) == 1
    finally:
        up.stop()

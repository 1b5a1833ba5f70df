"""How fast console pages load with a week of issues.

Seeds a fresh SQLite store with COUNT issues (default 3000) over seven days, starts
`hypercare up` on loopback, signs in, then fetches each page ROUNDS times in a row and
prints the median and the 95th percentile of the full response time (server and transfer,
one client, no concurrency). Run from the repository root:

    .venv/bin/python bench/web_pages.py [COUNT] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.web.live_server import running_console  # noqa: E402

from web_seed import seed  # noqa: E402


def main(count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        started = time.monotonic()
        last = asyncio.run(seed(data, count))
        print(f"seeded {count} issues in {time.monotonic() - started:.1f} s")
        with running_console(data) as server, httpx.Client(base_url=server.url) as http:
            http.get("/signin")
            nonce = http.cookies.get("hc_signin", path="/signin") or ""
            r = http.post("/signin", data={"token": server.admin_token, "csrf": nonce})
            assert r.status_code == 303, r.text
            pages = [
                "/",
                "/overview/live",
                "/triage",
                "/triage?status=all&sort=-updated",
                "/triage?q=payment&status=all",
                "/triage?priority=P1&sla=breached&status=all",
                f"/issues/{last}",
                f"/issues/{last // 2}",
                "/issues/new",
            ]
            print(f"{'page':48} {'median ms':>10} {'p95 ms':>8} {'KiB':>6}")
            for page in pages:
                times = []
                size = 0
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    r = http.get(page)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, (page, r.status_code)
                    size = len(r.content)
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                print(f"{page:48} {statistics.median(times):10.1f} {p95:8.1f} {size / 1024:6.1f}")
            assert re.search(r"\d+ issues", http.get("/triage?status=all").text)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*(args + [3000, 20][len(args) :]))

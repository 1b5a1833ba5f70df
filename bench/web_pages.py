"""How fast every console page loads with a week of demo data.

Seeds a fresh SQLite store (bench/web_seed.py) with COUNT issues (default 3000) and a week
of everything else: minute and hour rollups of 15 gateway routes, three days of calls,
2000 signals (reports, NPS/CSAT, alerts) and a few integrations. Starts `hypercare up`
(console only, `--workers 0`) on loopback, signs in, then fetches each page and each
fragment a page fetches ROUNDS times in a row (one client, no concurrency, after one
warm-up fetch) and prints p50/p95 of the wall time (request to last byte) and of the
server side (the `Server-Timing: app` header: request to response headers), with the
load average. Run from the repository root:

    .venv/bin/python bench/web_pages.py [COUNT] [ROUNDS] [--data DIR] [--in-process]

With --data, the seeded store is kept in DIR and reused by the next run with the same DIR
(seeding takes about two minutes; the data ages: reuse it within the hour). With
--in-process the pages are then timed once more through the app in the bench's own process
(no server, no background jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
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

from hypercare.api.app import build_state, create_app  # noqa: E402
from hypercare.auth import service as auth_service  # noqa: E402
from hypercare.auth.rules import Role  # noqa: E402
from hypercare.config import parse_config  # noqa: E402
from hypercare.store.db import create_engine, session_factory  # noqa: E402
from web_seed import API_ROUTES, gateway_yaml, seed, seed_week  # noqa: E402

BUDGET_MS = 300.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def server_ms(r: httpx.Response) -> float:
    found = re.search(r"app;dur=([\d.]+)", r.headers.get("server-timing", ""))
    return float(found.group(1)) if found else float("nan")


def first_event_ms(http: httpx.Client, path: str) -> tuple[float, float]:
    """An SSE stream: the time to its first event (the stream itself stays open)."""
    t0 = time.perf_counter()
    with http.stream("GET", path) as r:
        assert r.status_code == 200, (path, r.status_code)
        for _ in r.iter_raw():
            break
        return (time.perf_counter() - t0) * 1000, server_ms(r)


async def admin_token(data: Path) -> str:
    """A fresh admin token in the store (the server's bootstrap token is only registered
    on an empty store, so a reused one needs its own)."""
    engine = create_engine(f"sqlite+aiosqlite:///{data / 'hypercare.db'}")
    try:
        async with session_factory(engine)() as s, s.begin():
            created = await auth_service.create_token(session=s, name="bench", role=Role.admin)
            return created.token
    finally:
        await engine.dispose()


async def in_process(data: Path, pages: list[tuple[str, str, dict[str, str]]], runs: int) -> None:
    """The same pages through the app in this process (no server, no background jobs): the
    console's own cost, apart from what the server's jobs and other processes add."""
    config = parse_config((data / "hypercare.yaml").read_text(), "hypercare.yaml")
    engine = create_engine(f"sqlite+aiosqlite:///{data / 'hypercare.db'}")
    state = build_state(config, engine)
    app = create_app(state, background=False)
    token = await admin_token(data)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
            await http.get("/signin")
            nonce = http.cookies.get("hc_signin", path="/signin") or ""
            await http.post("/signin", data={"token": token, "csrf": nonce})
            print(f"\nin process, {runs} runs after one warm-up: p50 / p95 ms")
            for label, path, headers in pages:
                times = []
                for n in range(runs + 1):
                    t0 = time.perf_counter()
                    r = await http.get(path, headers=headers)
                    assert r.status_code == 200, (path, r.status_code)
                    if n:
                        times.append((time.perf_counter() - t0) * 1000)
                print(
                    f"{label:30} {path[:44]:44} {statistics.median(times):8.1f} "
                    f"{pct(times, 0.95):6.1f}"
                )
    finally:
        await engine.dispose()


def main(count: int, rounds: int, keep: Path | None, inproc: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = keep or Path(tmp)
        config = gateway_yaml()
        marker = data / "seeded-last-issue"
        if marker.exists():
            last = int(marker.read_text())
            print(f"reusing the store seeded in {data}")
        else:
            data.mkdir(parents=True, exist_ok=True)
            (data / "hypercare.yaml").write_text(config)
            started = time.monotonic()
            names: list[str | None] = [name for name, _, _ in API_ROUTES]
            last = asyncio.run(seed(data, count, routes=[*names, None]))
            seeded = asyncio.run(seed_week(data))
            marker.write_text(str(last))
            print(
                f"seeded {count} issues, {seeded['minute_rollups']:,} minute rollups "
                f"({len(API_ROUTES)} routes x 7 days), {seeded['calls']:,} calls, "
                f"{seeded['signals']:,} signals in {time.monotonic() - started:.0f} s"
            )
        with (
            running_console(data, config, args=("--workers", "0")) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            http.get("/signin")
            nonce = http.cookies.get("hc_signin", path="/signin") or ""
            token = asyncio.run(admin_token(data))
            r = http.post("/signin", data={"token": token, "csrf": nonce})
            assert r.status_code == 303, r.text
            route = "payment-create"
            # a failing call of the last day (the seed ends when it ran)
            failing = http.get(f"/apis/{route}?range=24h").text
            found = re.search(r'href="/calls/([^"]+)"', failing)
            call = found.group(1) if found else "req-00000001"
            htmx = {"HX-Request": "true"}
            pages: list[tuple[str, str, dict[str, str]]] = [
                ("overview", "/", {}),
                ("  live fragment", "/overview/live", htmx),
                ("  latest signals fragment", "/overview/signals", htmx),
                ("  live stream (first event)", "/live", {}),
                ("triage (open)", "/triage", {}),
                ("triage (all, by update)", "/triage?status=all&sort=-updated", {}),
                ("triage (search)", "/triage?q=payment&status=all", {}),
                ("triage (P1 breached)", "/triage?priority=P1&sla=breached&status=all", {}),
                ("  queue fragment", "/triage?status=all", htmx),
                ("issue (newest)", f"/issues/{last}", {}),
                ("issue (mid-week)", f"/issues/{last // 2}", {}),
                ("  timeline fragment", f"/issues/{last}/timeline", htmx),
                ("new issue", "/issues/new", {}),
                ("APIs (1h)", "/apis", {}),
                ("APIs (7d)", "/apis?range=7d", {}),
                ("route (default range)", f"/apis/{route}", {}),
                ("route (24h)", f"/apis/{route}?range=24h", {}),
                ("route (7d)", f"/apis/{route}?range=7d", {}),
                ("call detail", f"/calls/{call}", {}),
                ("feedback", "/feedback", {}),
                ("integrations", "/integrations", {}),
                ("handover", "/handover", {}),
            ]
            pages += [
                (f"  {label}", path, htmx)
                for label, path in extra_fragments(http, [p for _, p, _ in pages])
            ]
            load = os.getloadavg()
            print(
                f"{rounds} runs per page after one warm-up; load average "
                f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs"
            )
            print(
                f"{'page':30} {'path':44} {'wall p50':>8} {'p95':>6} "
                f"{'server p50':>10} {'p95':>6} {'KiB':>6}"
            )
            slow = []
            for label, path, headers in pages:
                wall: list[float] = []
                server: list[float] = []
                size = 0
                for n in range(rounds + 1):
                    if path == "/live":
                        w, s = first_event_ms(http, path)
                    else:
                        t0 = time.perf_counter()
                        try:
                            r = http.get(path, headers=headers)
                        except httpx.HTTPError:
                            print((data / "server.log").read_text()[-3000:])
                            raise
                        w = (time.perf_counter() - t0) * 1000
                        assert r.status_code == 200, (path, r.status_code)
                        s = server_ms(r)
                        size = len(r.content)
                    if n:  # the first fetch warms caches and is not counted
                        wall.append(w)
                        server.append(s)
                p95 = pct(wall, 0.95)
                if p95 >= BUDGET_MS:
                    slow.append(label.strip())
                print(
                    f"{label:30} {path[:44]:44} {statistics.median(wall):8.1f} {p95:6.1f} "
                    f"{statistics.median(server):10.1f} {pct(server, 0.95):6.1f} "
                    f"{size / 1024:6.1f}"
                )
            load = os.getloadavg()
            print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
            print(f"over {BUDGET_MS:.0f} ms at p95: {', '.join(slow) or 'none'}")
        if inproc:
            asyncio.run(in_process(data, [p for p in pages if p[1] != "/live"], rounds))


def extra_fragments(http: httpx.Client, paths: list[str]) -> list[tuple[str, str]]:
    """Fragments that pages load after they render (`hx-trigger="load"`), found in them."""
    found: dict[str, str] = {}
    for path in paths:
        if path == "/live":
            continue
        r = http.get(path)
        assert r.status_code == 200, (path, r.status_code)
        html = r.text
        for tag in re.findall(r"<[^>]*hx-trigger=\"[^\"]*\bload\b[^>]*>", html):
            got = re.search(r'hx-get="([^"]+)"', tag)
            if got:
                fragment = got.group(1).replace("&amp;", "&")
                found.setdefault(fragment, f"fragment {fragment.split('?')[0]}"[:30])
    return [(label, fragment) for fragment, label in found.items()]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("count", type=int, nargs="?", default=3000)
    ap.add_argument("rounds", type=int, nargs="?", default=20)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--in-process", action="store_true", help="also time the app in process")
    a = ap.parse_args()
    main(a.count, a.rounds, a.data, a.in_process)

"""Detection latency benchmark: from an upstream starting to fail to the firing gateway signal.

    .venv/bin/python bench/detection.py [--runs 10] [--rate 100] [--routes 10]

Starts `hypercare up --workers 1` (a subprocess, its own temporary data dir, free loopback
ports) routing `--routes` routes to an asyncio HTTP upstream in this process, and drives steady
paced traffic (`--rate` req/s in all, spread evenly over the routes) through the gateway. Each
run picks the next route and, at T0, makes the upstream answer 503 to 40 % of that route's calls
(2 of every 5 of that route's calls, counted per route: deterministic). T_signal is when
`GET /api/v1/signals?source=gateway&status=firing` (polled every 100 ms) first shows the
`5xx-rate` signal of that route. The issue's `mttd_seconds` is read from `GET /api/v1/issues/ID`.
The upstream is then restored and the run ends when `GET /api/v1/detection/live` shows nothing
firing for that route any more (the rule resolved).

One `hypercare up` serves every run: a fresh route per run gives every run its own signal and
issue (one route reused would attach every run's signal to the first run's issue, and the issue's
MTTD would be the first run's), while the steady traffic on all routes keeps the live windows
and the baselines of every route warm, as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import start_up

ADMIN = "bench-admin-token-0123456789abcdef"
FAIL_RATIO = 0.4


class Upstream:
    """A tiny keep-alive HTTP/1.1 server; `failing` is the path prefix answering 503 to 40 %."""

    def __init__(self) -> None:
        self.failing: str | None = None
        self.calls = 0
        self.failed = 0
        self.per_path: dict[str, int] = {}  # calls per path: 40 % of each route's own calls

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                self.calls += 1
                n = self.per_path[path] = self.per_path.get(path, 0) + 1
                fail = self.failing is not None and path.startswith(self.failing)
                if fail and n % 5 < 2:
                    self.failed += 1
                    body = b'{"error":"unavailable"}'
                    status = b"503 Service Unavailable"
                else:
                    body = b'{"ok":true}'
                    status = b"200 OK"
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


def config_text(upstream_port: int, routes: int) -> str:
    lines = [
        "gateway:",
        "  upstreams:",
        "    shop:",
        f'      targets: ["127.0.0.1:{upstream_port}"]',
        "  routes:",
    ]
    for i in range(routes):
        lines += [
            f"    - name: route-{i}",
            f"      match: {{path: /r{i}/items, methods: [GET]}}",
            "      upstream: shop",
            f"      tags: {{component: component-{i}}}",
        ]
    return "\n".join(lines) + "\n"


async def drive(
    client: httpx.AsyncClient,
    base: str,
    rate: float,
    routes: int,
    stop: float,
    stopping: asyncio.Event,
) -> int:
    """Paced GETs, round robin over the routes, until `stop` (monotonic). Returns errors."""
    errors = 0
    sem = asyncio.Semaphore(64)
    tasks: set[asyncio.Task[None]] = set()

    async def one(path: str) -> None:
        nonlocal errors
        try:
            await client.get(base + path)
        except httpx.HTTPError:
            errors += 1
        finally:
            sem.release()

    i = 0
    start = time.monotonic()
    while time.monotonic() < stop and not stopping.is_set():
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await sem.acquire()
        t = asyncio.create_task(one(f"/r{i % routes}/items"))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    return errors


async def firing_signal(api: httpx.AsyncClient, route: str) -> dict[str, object] | None:
    page = (
        await api.get("/api/v1/signals", params={"source": "gateway", "status": "firing"})
    ).json()
    for s in page["items"]:
        if s["route"] == route and "5xx-rate" in s["dedup_key"]:
            return dict(s)
    return None


async def route_firing(api: httpx.AsyncClient, route: str) -> bool:
    live = (await api.get("/api/v1/detection/live")).json()
    return any(f["route"] == route for f in live["firing"])


async def bench(args: argparse.Namespace) -> None:
    up = Upstream()
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
    upstream_port = int(server.sockets[0].getsockname()[1])
    results: list[tuple[float, float | None, int | None]] = []
    with tempfile.TemporaryDirectory(prefix="hc-bench-detect-") as d:
        cfg = Path(d) / "hypercare.yaml"
        cfg.write_text(config_text(upstream_port, args.routes))
        env: dict[str, str | None] = {
            "HYPERCARE_ADMIN_TOKEN": ADMIN,
            "HYPERCARE_NODE_TOKEN": None,
        }
        proc = await asyncio.to_thread(
            start_up, Path(d) / "data", config=cfg, args=["--workers", "1"], env=env
        )
        gw = proc.gateway_port
        api = httpx.AsyncClient(
            base_url=proc.url,
            headers={"authorization": f"Bearer {ADMIN}"},
            timeout=10,
        )
        client = httpx.AsyncClient(
            timeout=10, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )
        traffic: asyncio.Task[int] | None = None
        stopping = asyncio.Event()
        try:
            budget = args.warmup + args.runs * (args.max_detect + args.max_recover + 5) + 30
            traffic = asyncio.create_task(
                drive(
                    client,
                    f"http://127.0.0.1:{gw}",
                    args.rate,
                    args.routes,
                    time.monotonic() + budget,
                    stopping,
                )
            )
            print(
                f"warm-up: {args.warmup}s of steady traffic at {args.rate} req/s", file=sys.stderr
            )
            await asyncio.sleep(args.warmup)
            for run in range(args.runs):
                route = f"route-{run % args.routes}"
                if await firing_signal(api, route) is not None:
                    raise RuntimeError(f"{route} already has a firing signal")
                calls0, failed0 = up.per_path.get(f"/r{run % args.routes}/items", 0), up.failed
                t0 = time.time()
                up.failing = f"/r{run % args.routes}/"
                signal = None
                while time.time() - t0 < args.max_detect:
                    signal = await firing_signal(api, route)
                    if signal is not None:
                        break
                    await asyncio.sleep(0.1)
                latency = time.time() - t0
                up.failing = None
                calls = up.per_path.get(f"/r{run % args.routes}/items", 0) - calls0
                share = (up.failed - failed0) / calls if calls else 0.0
                mttd = issue_id = None
                if signal is None:
                    latency = float("inf")
                else:
                    issue_id = signal["issue_id"]
                    if isinstance(issue_id, int):
                        issue = (await api.get(f"/api/v1/issues/{issue_id}")).json()
                        mttd = issue.get("mttd_seconds")
                        if mttd is None and isinstance(issue.get("issue"), dict):
                            mttd = issue["issue"].get("mttd_seconds")
                results.append((latency, mttd, issue_id if isinstance(issue_id, int) else None))
                print(
                    f"run {run + 1:2d} {route:8s} T_signal-T0 {latency:6.2f} s"
                    f"  issue {issue_id}  mttd_seconds {mttd}"
                    f"  ({calls} calls to the route meanwhile, {share:.0%} 503)",
                    file=sys.stderr,
                )
                recovered = time.time()
                while await route_firing(api, route):
                    if time.time() - recovered > args.max_recover:
                        raise RuntimeError(
                            f"{route} still firing {args.max_recover}s after restore"
                        )
                    await asyncio.sleep(0.5)
                print(
                    f"        resolved {time.time() - recovered:5.1f} s after restore",
                    file=sys.stderr,
                )
        finally:
            stopping.set()
            if traffic is not None:
                await asyncio.wait([traffic], timeout=15)
            await client.aclose()
            await api.aclose()
            await asyncio.to_thread(proc.stop)
            server.close()
    lat = [r[0] for r in results]
    mttds = [r[1] for r in results if isinstance(r[1], int | float)]
    issues = {r[2] for r in results}
    print(
        f"\n{len(results)} runs, {args.rate} req/s over {args.routes} routes, 40 % 503 from T0;"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    print(f"T_signal - T0: median {statistics.median(lat):.2f} s  max {max(lat):.2f} s")
    print("  all: " + " ".join(f"{x:.2f}" for x in lat))
    if mttds:
        print(
            f"issue mttd_seconds: median {statistics.median(mttds):.2f} s  max {max(mttds):.2f} s"
        )
        print("  all: " + " ".join(f"{x:.2f}" for x in mttds))
    # the issue's MTTD runs from the first bad second to the signal's arrival, so it can
    # exceed the polled latency by at most a second or so (second granularity, polling)
    over = [
        (lat_, m)
        for lat_, m, _ in results
        if isinstance(m, int | float) and math.isfinite(lat_) and m > lat_ + 1.5
    ]
    print(f"runs whose MTTD exceeds T_signal - T0 by more than 1.5 s: {len(over)}")
    print(f"distinct issues: {len(issues)}; upstream calls {up.calls}, 503s {up.failed}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--routes", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=35.0, help="seconds before the first run")
    ap.add_argument("--max-detect", type=float, default=60.0)
    ap.add_argument("--max-recover", type=float, default=120.0)
    args = ap.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
